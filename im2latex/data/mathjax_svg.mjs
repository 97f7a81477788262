// Typesets batches of TeX formulas with MathJax 3 (TeX input, SVG output, display mode), as a web page shows them.
// Usage: node mathjax_svg.mjs NODE_MODULES_DIR < batches
//   stdin: one batch per line, a JSON list of TeX strings; stdout: one line per batch, a JSON list that holds for
//   each formula its SVG string or {"error": "..."}. The process ends at the end of its input.
// One process serves many batches: loading MathJax and warming up V8's JIT cost more than typesetting 200 formulas.
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const nodeModules = process.argv[2];
if (!nodeModules) {
  process.stderr.write('usage: node mathjax_svg.mjs NODE_MODULES_DIR < batches (a JSON list of formulas a line)\n');
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
  // IM2LATEX-100K's normal form spaces out dimensions (\hspace { 1 c m }), which MathJax refuses where LaTeX
  // does not; a page would say \hspace{1cm}, so that argument is joined up (the label keeps its normal form)
  const source = formula.replace(/\\hspace\s*(\*?)\s*\{([^{}]*)\}/g, (_, star, dim) => `\\hspace${star}{${dim.replace(/\s+/g, '')}}`);
  let node;
  try {
    node = html.convert(source, { display: true });
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

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  let formulas;
  try {
    formulas = JSON.parse(line);
  } catch (err) {
    formulas = null;
  }
  // a line in, a line out, always: the caller reads one answer per batch
  process.stdout.write(JSON.stringify(Array.isArray(formulas) ? formulas.map(typeset) : { error: 'a batch must be a JSON list' }) + '\n');
}
