#!/usr/bin/env node
// A native-solc look-alike around npm `solc` (solc-js), so py-solc-x and brownie can compile
// offline. It answers the flags they use: --version, --help, --standard-json (JSON on stdin,
// only JSON on stdout), --combined-json with source files, --base-path, --include-path,
// --allow-paths and `prefix=path` remappings. See README "Toolchain".
'use strict';

const fs = require('fs');
const path = require('path');

const projectRoot = path.resolve(__dirname, '..');
const solc = require(require.resolve('solc', { paths: [projectRoot] }));

const VERSION = solc.version(); // e.g. 0.8.37+commit.f401782d.Emscripten.clang

const HELP = `solc, the Solidity commandline compiler (solc-js ${VERSION} behind loyalty-ledger's wrapper)

Usage: solc [options] [input_file...]

Allowed options:
  --help                 Show help message and exit.
  --version              Show version and exit.
  --standard-json        Switch to Standard JSON input / output mode.
  --base-path path       Use the given path as the root of the source tree.
  --include-path path    Make an additional source directory available.
  --allow-paths path(s)  Accepted for compatibility; imports are read from the paths above.
  --combined-json abi,asm,ast,bin,bin-runtime,devdoc,function-debug,function-debug-runtime,generated-sources,generated-sources-runtime,hashes,metadata,opcodes,srcmap,srcmap-runtime,storage-layout,userdoc
                         Output a single json document containing the specified information.
  --optimize             Enable bytecode optimizer.
  --optimize-runs n      Optimizer runs (default 200).
  --evm-version version  Select desired EVM version.
`;

/** Write everything, wait for stdout to drain, then exit (large outputs were cut off otherwise). */
function finish(text, code) {
  process.stdout.write(text, () => process.exit(code));
}

function fail(message) {
  process.stderr.write(`Error: ${message}\n`, () => process.exit(1));
}

function parseArgs(argv) {
  const opts = { files: [], remappings: [], includePaths: [], allowPaths: [], basePath: null };
  const takesValue = new Set([
    '--base-path', '--include-path', '--allow-paths', '--combined-json', '--optimize-runs',
    '--evm-version', '--output-dir',
  ]);
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value = null;
    if (arg.startsWith('--') && arg.includes('=')) {
      [arg, value] = [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)];
    } else if (takesValue.has(arg)) {
      value = argv[i + 1];
      i += 1;
    }
    switch (arg) {
      case '--version': opts.version = true; break;
      case '--help': opts.help = true; break;
      case '--standard-json': opts.standardJson = true; break;
      case '--optimize': opts.optimize = true; break;
      case '--optimize-runs': opts.optimizeRuns = Number(value); break;
      case '--evm-version': opts.evmVersion = value; break;
      case '--base-path': opts.basePath = value; break;
      case '--include-path': opts.includePaths.push(value); break;
      case '--allow-paths': opts.allowPaths.push(...value.split(',')); break;
      case '--combined-json': opts.combinedJson = value.split(','); break;
      case '--output-dir': case '--no-color': case '--overwrite': break;
      case '-': opts.stdinSource = true; break;
      default:
        if (arg.startsWith('--')) {
          opts.unknown = arg;
        } else if (!arg.startsWith('-') && arg.includes('=') && !fs.existsSync(arg)) {
          opts.remappings.push(arg);
        } else {
          opts.files.push(arg);
        }
    }
  }
  return opts;
}

function makeImportCallback(opts) {
  const roots = [
    opts.basePath, ...opts.includePaths, ...opts.allowPaths, process.cwd(),
    path.join(process.cwd(), 'node_modules'), path.join(projectRoot, 'node_modules'),
  ].filter(Boolean);
  return (importPath) => {
    for (const root of roots) {
      const candidate = path.resolve(root, importPath);
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
  };
}

function readStdin() {
  return fs.readFileSync(0, 'utf8');
}

function standardJson(opts) {
  const input = readStdin();
  finish(solc.compile(input, { import: makeImportCallback(opts) }), 0);
}

const COMBINED_TO_STANDARD = {
  abi: ['abi'],
  bin: ['evm.bytecode.object'],
  'bin-runtime': ['evm.deployedBytecode.object'],
  opcodes: ['evm.bytecode.opcodes'],
  srcmap: ['evm.bytecode.sourceMap'],
  'srcmap-runtime': ['evm.deployedBytecode.sourceMap'],
  metadata: ['metadata'],
  hashes: ['evm.methodIdentifiers'],
  devdoc: ['devdoc'],
  userdoc: ['userdoc'],
  'storage-layout': ['storageLayout'],
  asm: ['evm.legacyAssembly'],
  ast: [],
};

function pick(obj, dotted) {
  return dotted.split('.').reduce((o, k) => (o == null ? o : o[k]), obj);
}

function combinedJson(opts) {
  const sources = {};
  if (opts.stdinSource) sources['<stdin>'] = { content: readStdin() };
  for (const file of opts.files) sources[file] = { content: fs.readFileSync(file, 'utf8') };
  const selections = opts.combinedJson.flatMap((k) => COMBINED_TO_STANDARD[k] || []);
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      remappings: opts.remappings,
      optimizer: { enabled: Boolean(opts.optimize), runs: opts.optimizeRuns || 200 },
      outputSelection: { '*': { '*': selections, '': opts.combinedJson.includes('ast') ? ['ast'] : [] } },
    },
  };
  if (opts.evmVersion) input.settings.evmVersion = opts.evmVersion;
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: makeImportCallback(opts) }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) {
    fail(errors.map((e) => e.formattedMessage).join('\n'));
    return;
  }
  const contracts = {};
  for (const [file, byName] of Object.entries(output.contracts || {})) {
    for (const [name, compiled] of Object.entries(byName)) {
      const entry = {};
      for (const key of opts.combinedJson) {
        const [dotted] = COMBINED_TO_STANDARD[key] || [];
        if (dotted) {
          const value = pick(compiled, dotted);
          entry[key] = key === 'abi' || key === 'hashes' || key === 'devdoc' || key === 'userdoc' || key === 'storage-layout'
            ? value : (typeof value === 'string' ? value : JSON.stringify(value));
        }
      }
      contracts[`${file}:${name}`] = entry;
    }
  }
  const result = { contracts, version: VERSION };
  if (opts.combinedJson.includes('ast')) {
    result.sources = Object.fromEntries(
      Object.entries(output.sources || {}).map(([f, s]) => [f, { AST: s.ast }]),
    );
  }
  finish(JSON.stringify(result), 0);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.unknown) return fail(`unrecognised option '${opts.unknown}'`);
  if (opts.version) return finish(`solc, the solidity compiler commandline interface\nVersion: ${VERSION}\n`, 0);
  if (opts.help) return finish(HELP, 0);
  if (opts.standardJson) return standardJson(opts);
  if (opts.combinedJson) return combinedJson(opts);
  return fail('only --version, --help, --standard-json and --combined-json are supported by this wrapper');
}

main();
