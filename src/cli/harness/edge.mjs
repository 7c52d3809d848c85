// cordon's edge harness: JavaScript in the Workers module shape,
//
//   export default { async fetch(request, env, ctx) { return new Response('hi') } }
//
// called once with a Request built from the run's `input` (or a GET of `/`); the Response's
// status, headers and body are the run's `result`. Embedded in the cordon binary, written to
// /tmp/.cordon/edge.mjs in each sandbox and run by node (see src/cli/spawn-plan.c).
//
// "No filesystem, no network", by layer:
//   - the sandbox (every node version): no network namespace but loopback, a read-only image,
//     and for edge a scratch of 1 MiB / 16 inodes holding only this file; the user's module is
//     never written anywhere: it comes on stdin with the input, the env and the record nonce.
//   - node's permission model (node >= 20, when cordon finds it in the image): fs reads only of
//     this file, no fs writes, no child processes, no workers, no native addons. This holds in
//     node's C++ layer, even for code that escaped the vm context below.
//   - this harness (every node version): the module is a vm.SourceTextModule in a fresh
//     context whose globals are web APIs only (no process, require, Buffer); every `import` and
//     `import()` is refused; fetch() rejects. A vm context is not a security boundary (host
//     objects such as Request lead back to the host realm), so on node 18 a determined module
//     can reach node's APIs, and is then held by the sandbox like any node program.
//
// Records (console calls with capture_console, the result, an uncaught error with the user's
// file:line:column) go to stdout as "\x1e" "cordon:" NONCE ":" JSON "\n" lines; see
// src/cli/spawn-out.c for what a forged record can and cannot do.
import fs from 'node:fs';
import util from 'node:util';
import vm from 'node:vm';
import { webcrypto } from 'node:crypto';

const conf = JSON.parse(fs.readFileSync(0, 'utf8'));
const marker = '\x1ecordon:' + conf.nonce + ':';
delete conf.nonce;
const rawWrite = process.stdout.write.bind(process.stdout);
const rawErr = process.stderr.write.bind(process.stderr);
const userFile = conf.file;
const userRel = userFile.replace(/^\/tmp\//, '');

function emit(rec) {
  let text;
  try {
    text = JSON.stringify(rec);
  } catch (e) {
    text = JSON.stringify({ t: 'log', level: 'error', message: 'cordon: unreportable record' });
  }
  rawWrite(marker + text + '\n');
}

function makeConsole() {
  const c = {};
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    c[level] = (...args) => {
      const message = util.format(...args);
      (level === 'error' || level === 'warn' ? rawErr : rawWrite)(message + '\n');
      if (conf.capture) emit({ t: 'log', level, message });
    };
  }
  return c;
}

function blockedFetch() {
  return Promise.reject(new TypeError('fetch: the edge runtime has no network access'));
}

const globals = {
  console: makeConsole(),
  fetch: blockedFetch,
  crypto: webcrypto,
};
for (const name of ['Request', 'Response', 'Headers', 'URL', 'URLSearchParams', 'TextEncoder',
  'TextDecoder', 'atob', 'btoa', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval',
  'queueMicrotask', 'structuredClone', 'AbortController', 'AbortSignal', 'Blob', 'FormData',
  'ReadableStream', 'WritableStream', 'TransformStream', 'Event', 'EventTarget',
  'DOMException']) {
  if (globalThis[name] !== undefined) globals[name] = globalThis[name];
}

// Where an error happened in the user's module: the first frame in it, or for a SyntaxError
// the "file:line" header with the caret below the line.
function locate(err) {
  const lines = String((err && err.stack) || '').split('\n');
  const head = /^(\/[^:]+):(\d+)$/.exec(lines[0] || '');
  if (head && head[1] === userFile) {
    const caret = lines.slice(1, 4).find((l) => /^\s*\^/.test(l));
    return { file: userRel, line: +head[2], column: caret ? caret.indexOf('^') + 1 : null };
  }
  for (const l of lines) {
    const m = /\(?(\/[^\s():]+):(\d+):(\d+)\)?\s*$/.exec(l);
    if (m && m[1] === userFile) return { file: userRel, line: +m[2], column: +m[3] };
  }
  return { file: null, line: null, column: null };
}

// A SyntaxError of a vm module carries no location; a vm.Script's does ("file:line" and a
// caret). So compile the source once more as a script, with the module-only syntax blanked out
// (same lengths, so lines and columns hold), and take its location if it fails the same way.
function syntaxLocation(code, err) {
  const blank = (m) => m.replace(/[^\n]/g, ' ');
  const script = code
    .replace(/^[ \t]*import\s[^;]*;?/gm, blank)
    .replace(/\bexport\s+default\b/g, (m) => 'void' + blank(m).slice(4))
    .replace(/\bexport(?=\s+(const|let|var|function|class|async)\b)/g, blank);
  try {
    new vm.Script(script, { filename: userFile });
  } catch (e) {
    if (e && e.message === err.message) return locate(e);
  }
  return { file: null, line: null, column: null };
}

let failed = false;
function fail(err) {
  if (failed) return;
  failed = true;
  // Errors made in the module's context are not `instanceof Error` here: go by shape.
  const isErr = err && typeof err === 'object' && typeof err.stack === 'string';
  const me = new URL(import.meta.url).pathname;
  const stack = (isErr ? err.stack : 'Uncaught ' + util.inspect(err))
    .split('\n')
    .filter((l) => !(/^\s+at /.test(l) && (l.includes('node:') || l.includes(me))))
    .join('\n');
  rawErr(stack + '\n');
  const message = isErr ? `${err.name}: ${err.message}` : 'Uncaught ' + util.inspect(err);
  let loc = locate(err);
  if (loc.file === null && isErr && err.name === 'SyntaxError') loc = syntaxLocation(conf.code, err);
  emit({ t: 'error', value: { name: (isErr && err.name) || 'Error', message, stack, ...loc } });
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

// input null: GET /. An object of {method, url, headers, body}: that request (url may be a
// path). Any other JSON: POSTed to / as application/json.
function buildRequest(input, hasInput) {
  const base = 'http://localhost';
  const keys = ['method', 'url', 'headers', 'body'];
  if (!hasInput) return new Request(base + '/');
  if (input && typeof input === 'object' && !Array.isArray(input) &&
      Object.keys(input).length && Object.keys(input).every((k) => keys.includes(k))) {
    const url = typeof input.url === 'string' ? input.url : '/';
    const body = input.body === undefined || input.body === null ? undefined
      : typeof input.body === 'string' ? input.body : JSON.stringify(input.body);
    const method = (input.method || (body !== undefined ? 'POST' : 'GET')).toUpperCase();
    return new Request(url.startsWith('/') ? base + url : url,
      { method, headers: input.headers || {}, body });
  }
  return new Request(base + '/', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(input),
  });
}

function refuseImport(specifier) {
  throw new Error(`import of "${specifier}" is not available in the edge runtime ` +
    '(no filesystem, no network, no node modules)');
}

async function main() {
  const context = vm.createContext(globals, { name: 'edge' });
  let mod;
  try {
    mod = new vm.SourceTextModule(conf.code, {
      identifier: userFile, context, importModuleDynamically: refuseImport,
    });
    await mod.link(refuseImport);
    await mod.evaluate();
  } catch (e) {
    fail(e);
    return;
  }
  const handler = mod.namespace.default;
  if (!handler || typeof handler.fetch !== 'function') {
    fail(new TypeError('the module must export default an object with a fetch(request, env, ' +
      'ctx) method'));
    return;
  }
  const pending = [];
  const ctx = { waitUntil: (p) => pending.push(p), passThroughOnException: () => {} };
  let res;
  try {
    res = await handler.fetch(buildRequest(conf.input, conf.has_input), conf.env, ctx);
    if (!(res instanceof Response)) throw new TypeError('fetch() must return a Response');
    const bytes = new Uint8Array(await res.arrayBuffer());
    let body, encoding = 'utf8';
    try {
      body = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      body = Buffer.from(bytes).toString('base64');
      encoding = 'base64';
    }
    const headers = {};
    for (const [k, v] of res.headers) headers[k] = k in headers ? headers[k] + ', ' + v : v;
    emit({ t: 'result', value: { status: res.status, headers, body, body_encoding: encoding } });
  } catch (e) {
    fail(e);
    return;
  }
  await Promise.allSettled(pending);
}

main();
