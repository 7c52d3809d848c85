// cordon's node harness (embedded in the cordon binary, written to /tmp/.cordon/harness.js in
// each sandbox, run as `node /tmp/.cordon/harness.js ARGS`; see src/cli/spawn-plan.c).
//
// It loads the user's program as the main module, the way `node main.js ARGS` would
// (require.main === module holds), with three additions, each reported as one record line on
// stdout ("\x1e" "cordon:" NONCE ":" JSON "\n", parsed by src/cli/spawn-out.c):
//   - function-shaped code: when module.exports (or its .default; for a .mjs entrypoint, the
//     default export) is a function, it is called with the request's `input`, awaited, and its
//     JSON value is the run's `result`.
//   - capture_console: console.log/info/warn/error/debug are reported as logs with their
//     level; the output still goes to stdout/stderr as usual.
//   - an uncaught error (thrown, rejected, or at load time): its stack (node's and cordon's
//     frames left out) and the first frame in the user's files as {file, line, column}.
// The nonce is read from a file that is unlinked before the user's code runs. Not a security
// boundary (the code shares this process); it keeps data the program passes through from
// forging a record. What cordon asserts itself never comes from a record.
'use strict';
const fs = require('fs');
const path = require('path');
const url = require('url');
const util = require('util');
const Module = require('module');

const nonce = fs.readFileSync('/tmp/.cordon/nonce', 'utf8').trim();
fs.unlinkSync('/tmp/.cordon/nonce');
const conf = JSON.parse(fs.readFileSync('/tmp/.cordon/conf.json', 'utf8'));
const marker = '\x1ecordon:' + nonce + ':';
const userFiles = new Set(conf.files);
// Bound now: the user's code may replace process.stdout.write; records keep their channel.
const rawWrite = process.stdout.write.bind(process.stdout);

function emit(rec) {
  let text;
  try {
    text = JSON.stringify(rec);
  } catch (e) {
    text = JSON.stringify({ t: 'log', level: 'error', message: 'cordon: unreportable record' });
  }
  // process.stdout is synchronous for pipes and files on Linux: the record lands after the
  // text written before it.
  rawWrite(marker + text + '\n');
}

if (conf.capture) {
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    const orig = console[level].bind(console);
    console[level] = (...args) => {
      orig(...args);
      emit({ t: 'log', level, message: util.format(...args) });
    };
  }
}

function relName(file) {
  return file === conf.entry ? conf.entry_rel : file.replace(/^\/tmp\//, '');
}

// Where the error happened in the user's code: the first stack frame in one of their files;
// for a SyntaxError at load time, node's "file:line" header and the caret under the line.
function locate(err) {
  const stack = String((err && err.stack) || '');
  const lines = stack.split('\n');
  const head = /^(?:file:\/\/)?(\/[^:]+):(\d+)$/.exec(lines[0] || '');
  if (head && userFiles.has(head[1])) {
    const caret = lines.slice(1, 4).find((l) => /^\s*\^/.test(l));
    return { file: relName(head[1]), line: +head[2], column: caret ? caret.indexOf('^') + 1 : null };
  }
  for (const l of lines) {
    const m = /\(?(?:file:\/\/)?(\/[^\s():]+):(\d+):(\d+)\)?\s*$/.exec(l);
    if (m && userFiles.has(m[1])) return { file: relName(m[1]), line: +m[2], column: +m[3] };
  }
  return { file: null, line: null, column: null };
}

function cleanStack(err) {
  const stack = String((err && err.stack) || err);
  const me = __filename;
  return stack
    .split('\n')
    .filter((l) => !(/^\s+at /.test(l) && (l.includes('node:internal') || l.includes(me))))
    .join('\n');
}

let reported = false;
function fail(err) {
  if (reported) return;
  reported = true;
  const stack = cleanStack(err);
  process.stderr.write(stack + '\n');
  const loc = locate(err);
  let message;
  if (err instanceof Error) message = `${err.name}: ${err.message}`;
  else message = 'Uncaught ' + util.inspect(err);
  emit({ t: 'error', value: { name: (err && err.name) || 'Error', message, stack, ...loc } });
  process.exitCode = 1;
}

process.on('uncaughtException', (e) => {
  fail(e);
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  fail(e);
  process.exit(1);
});

async function main() {
  process.argv = [process.argv[0], conf.entry, ...process.argv.slice(2)];
  let exported;
  try {
    if (conf.entry.endsWith('.mjs')) {
      // An ES module: its default export is the function, if any.
      exported = (await import(url.pathToFileURL(conf.entry).href)).default;
    } else {
      // As the main module: require.main === module in the user's code, as with `node main.js`.
      Module._load(conf.entry, null, true);
      exported = require.cache[path.resolve(conf.entry)].exports;
    }
  } catch (e) {
    fail(e);
    return;
  }
  let fn = null;
  if (typeof exported === 'function') fn = exported;
  else if (exported && typeof exported.default === 'function') fn = exported.default;
  if (!fn) return; // a plain script: it has run
  let value;
  try {
    value = await fn(conf.input);
  } catch (e) {
    fail(e);
    return;
  }
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    fail(new TypeError('the function returned a value that is not JSON: ' + e.message));
    return;
  }
  emit({ t: 'result', value: JSON.parse(text) });
}

main();
