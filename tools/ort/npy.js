'use strict';
// Minimal NumPy .npy reader/writer for float32 arrays: format versions 1.0,
// 2.0 and 3.0 on read, 1.0 on write; dtype '<f4' only, C order only.
// Spec: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

const fs = require('node:fs');

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

function fail(path, msg) {
  throw new Error(`${path}: ${msg}`);
}

// Returns {shape: number[], data: Float32Array}.
function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) fail(path, 'not a .npy file (bad magic)');
  const major = buf[6];
  let headerLen;
  let offset;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) fail(path, 'truncated header');
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    fail(path, `unsupported .npy format version ${major}.${buf[7]}`);
  }
  if (offset + headerLen > buf.length) fail(path, 'truncated header');
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', offset, offset + headerLen);
  const dataStart = offset + headerLen;

  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header);
  const shapeM = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM) fail(path, `cannot parse header ${JSON.stringify(header)}`);
  if (descr[1] !== '<f4') fail(path, `dtype ${descr[1]} is not supported (need '<f4', float32 little-endian)`);
  if (fortran[1] !== 'False') fail(path, 'Fortran-order arrays are not supported (need C order)');
  const shape = shapeM[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      if (!/^\d+L?$/.test(s)) fail(path, `bad shape entry ${JSON.stringify(s)}`);
      return parseInt(s, 10);
    });
  const numel = shape.reduce((a, b) => a * b, 1);
  const nbytes = numel * 4;
  if (buf.length - dataStart < nbytes) {
    fail(path, `expected ${nbytes} data bytes for shape (${shape.join(', ')}), found ${buf.length - dataStart}`);
  }
  // Copy into a fresh, aligned buffer (dataStart need not be a multiple of 4).
  const data = new Float32Array(numel);
  Buffer.from(data.buffer).set(buf.subarray(dataStart, dataStart + nbytes));
  return { shape, data };
}

// Writes a float32 array (C order) as .npy version 1.0, header padded so the
// data starts at a multiple of 64 bytes, as NumPy does.
function writeNpy(path, shape, data) {
  const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
  const numel = shape.reduce((a, b) => a * b, 1);
  if (f32.length !== numel) throw new Error(`${path}: ${f32.length} values for shape (${shape.join(', ')})`);
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const unpadded = MAGIC.length + 2 + 2 + header.length + 1; // +1 for the trailing '\n'
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  if (header.length > 0xffff) throw new Error(`${path}: header too long for .npy v1.0`);
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength);
  // .npy data is little-endian; every platform onnxruntime-node ships for is too.
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

module.exports = { readNpy, writeNpy };
