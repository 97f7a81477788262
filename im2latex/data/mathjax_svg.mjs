// Typesets a batch of TeX formulas with MathJax 3 (TeX input, SVG output, display mode), as a web page shows them.
// Usage: node mathjax_svg.mjs NODE_MODULES_DIR < formulas.json > svgs.json
//   stdin: a JSON list of TeX strings; stdout: a JSON list, for each formula its SVG string or {"error": "..."}.
// One process serves a whole batch: loading MathJax costs far more than typesetting one formula.
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';

const nodeModules = process.argv[2];
if (!nodeModules) {
  process.stderr.write('usage: node mathjax_svg.mjs NODE_MODULES_DIR < formulas.json\n');
  process.exit(2);
}
// mathjax-full ships CommonJS: require it from the repo's node_modules, wherever this script is run from
const require = createRequire(join(resolve(nodeModules), 'mathjax-full', 'package.json'));
const { mathjax } = require('./js/mathjax.js');
const { TeX } = require('./js/input/tex.js');
const { SVG } = require('./js/output/svg.js');
const { liteAdaptor } = require('./js/adaptors/liteAdaptor.js');
const { RegisterHTMLHandler } = require('./js/handlers/html.js');
const { AllPackages } = require('./js/input/tex/AllPackages.js');

// What a page with MathJax's default configuration (plus its autoloaded extensions) accepts, less:
// noerrors/noundefined, which would typeset a broken formula as red text instead of failing;
// newcommand/configmacros, whose definitions outlive a formula and would change how the rest of the batch sets;
// physics/colorv2/textmacros/setoptions, which no default page loads and which redefine standard macros.
const EXCLUDED = new Set(['noerrors', 'noundefined', 'newcommand', 'configmacros', 'physics', 'colorv2',
  'textmacros', 'setoptions']);
const packages = AllPackages.filter((name) => !EXCLUDED.has(name));

const adaptor = liteAdaptor();
RegisterHTMLHandler(adaptor);
const tex = new TeX({
  packages,
  // throw instead of building an merror node, so the caller gets a failure and its reason
  formatError: (jax, err) => { throw err; },
});
// 'local': each SVG holds its own glyph definitions once (<defs> + <use>), so it stands alone and stays small
const svg = new SVG({ fontCache: 'local' });
const html = mathjax.document('', { InputJax: tex, OutputJax: svg });

function typeset(formula) {
  if (typeof formula !== 'string' || !formula.trim()) {
    return { error: 'empty formula' };
  }
  tex.reset(); // forget the labels of earlier formulas: a repeated \label would otherwise fail
  let node;
  try {
    node = html.convert(formula, { display: true });
  } catch (err) {
    return { error: String(err && err.message ? err.message : err).split('\n')[0] };
  }
  const out = adaptor.innerHTML(node);
  if (out.includes('data-mml-node="merror"')) {
    return { error: 'merror node in the output' };
  }
  if (out.includes('<text')) { // a character outside MathJax's fonts: its pixels would depend on the machine's fonts
    return { error: 'needs a system font' };
  }
  return out;
}

const formulas = JSON.parse(readFileSync(0, 'utf8'));
if (!Array.isArray(formulas)) {
  process.stderr.write('stdin must be a JSON list of strings\n');
  process.exit(2);
}
process.stdout.write(JSON.stringify(formulas.map(typeset)));
