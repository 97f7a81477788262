"""Datasets: sources, rendering, tokenizer, vocabulary, preprocessing."""
