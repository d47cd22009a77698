#!/usr/bin/env node
'use strict';
// Times ONNX Runtime (onnxruntime-node, CPU execution provider) on one model
// and batch, inside this process, the way `blindfold bench` times Blindfold.
//
//   node tools/ort/bench.js MODEL.onnx --batch B --runs R --input X.npy \
//        --output Y.npy [--threads T] [--warmup W]
//
// X.npy: float32, C order, shape [N, ...]; the input is its first B rows
// (cycled when N < B). Prints one JSON object on stdout and writes the
// outputs of the last timed run to Y.npy (one --output per model output).
// Latency is the wall time of `await session.run(feeds)` per run, measured
// with process.hrtime.bigint(); session creation and warm-up are excluded.

const path = require('node:path');
const { readNpy, writeNpy } = require('./npy');

const USAGE =
  'usage: node tools/ort/bench.js MODEL.onnx --batch B --runs R --input X.npy --output Y.npy ' +
  '[--threads T] [--warmup W]';

function parseArgs(argv) {
  const o = { batch: 1, runs: 20, threads: 2, warmup: 10, outputs: [] };
  const intFlag = (name, v, min) => {
    if (!/^\d+$/.test(v ?? '')) throw new Error(`${name} needs an integer, got ${JSON.stringify(v)}`);
    const n = parseInt(v, 10);
    if (n < min) throw new Error(`${name} must be at least ${min}`);
    return n;
  };
  const rest = [];
  for (let i = 0; i < argv.length; ++i) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => (v !== undefined ? v : argv[++i]);
    switch (a) {
      case '--batch': o.batch = intFlag(a, next(), 1); break;
      case '--runs': o.runs = intFlag(a, next(), 1); break;
      case '--threads': o.threads = intFlag(a, next(), 0); break;
      case '--warmup': o.warmup = intFlag(a, next(), 0); break;
      case '--input': o.input = next(); break;
      case '--output': o.outputs.push(next()); break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
        rest.push(a);
    }
  }
  if (rest.length !== 1) throw new Error('exactly one MODEL.onnx is needed');
  o.model = rest[0];
  if (!o.input) throw new Error('--input X.npy is required');
  return o;
}

// First `batch` rows of x (cycling when x has fewer), as a new Float32Array.
function takeRows(x, batch) {
  if (x.shape.length < 1 || x.shape[0] < 1) throw new Error('input .npy has no rows');
  const rowLen = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(batch * rowLen);
  for (let r = 0; r < batch; ++r) {
    const src = (r % x.shape[0]) * rowLen;
    out.set(x.data.subarray(src, src + rowLen), r * rowLen);
  }
  return { shape: [batch, ...x.shape.slice(1)], data: out };
}

function summarize(v) {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  const ns = (ms) => Number(ms.toFixed(6)); // hrtime has nanosecond resolution
  return {
    median: ns(n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2])),
    min: ns(s[0]),
    max: ns(s[n - 1]),
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ort = require('onnxruntime-node');

  const session = await ort.InferenceSession.create(o.model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
  });
  if (session.inputNames.length !== 1) {
    throw new Error(`${o.model} has ${session.inputNames.length} inputs; this tool feeds exactly one`);
  }
  if (o.outputs.length > 0 && o.outputs.length !== session.outputNames.length) {
    throw new Error(
      `${o.model} has ${session.outputNames.length} output(s); ${o.outputs.length} --output given`);
  }

  const x = takeRows(readNpy(o.input), o.batch);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };

  for (let i = 0; i < o.warmup; ++i) await session.run(feeds);
  const lat = [];
  let results;
  for (let i = 0; i < o.runs; ++i) {
    const t0 = process.hrtime.bigint();
    results = await session.run(feeds);
    const t1 = process.hrtime.bigint();
    lat.push(Number(t1 - t0) / 1e6);
  }

  o.outputs.forEach((file, k) => {
    const t = results[session.outputNames[k]];
    if (t.type !== 'float32') throw new Error(`output ${session.outputNames[k]} is ${t.type}, not float32`);
    writeNpy(file, t.dims.map(Number), t.data);
  });

  const version = (ort.env.versions && ort.env.versions.node) || require('onnxruntime-node/package.json').version;
  const report = {
    engine: 'onnxruntime-node',
    version,
    model: path.basename(o.model, '.onnx'),
    batch: o.batch,
    runs: o.runs,
    latency_ms: summarize(lat),
    threads: { intra_op: o.threads, inter_op: 1 },
    warmup: o.warmup,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  if (typeof session.release === 'function') await session.release();
}

main().catch((e) => {
  process.stderr.write(`bench.js: ${e && e.message ? e.message : e}\n${USAGE}\n`);
  process.exit(2);
});
