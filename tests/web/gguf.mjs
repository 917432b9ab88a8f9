// Minimal GGUF (v3) header reader/writer and the generated test models.
//
// Nothing here needs Python: the models the error tests need are derived from the committed
// fixtures (tests/fixtures/models/) or written from scratch, at test time, into tests/web/out/gen/
// (or served virtually by server.mjs: a header followed by zeros, never on disk).

import { readFileSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';

export const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };
const SCALAR_SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** ggml types: [id, block elements, block bytes]. */
export const GGML = {
  F32: [0, 1, 4],
  F16: [1, 1, 2],
  Q4_0: [2, 32, 18],
  Q4_1: [3, 32, 20],
  Q5_0: [6, 32, 22],
  Q5_1: [7, 32, 24],
  Q8_0: [8, 32, 34],
  Q4_K: [12, 256, 144],
  Q5_K: [13, 256, 176],
  Q6_K: [14, 256, 210],
};
const GGML_BY_ID = Object.fromEntries(Object.entries(GGML).map(([k, v]) => [v[0], [k, ...v.slice(1)]]));

export function tensorBytes(type, dims) {
  const [, blk, bytes] = GGML[type];
  const n = dims.reduce((a, b) => a * b, 1);
  if (n % blk !== 0) throw new Error(`${type}: ${n} elements is not a multiple of ${blk}`);
  return (n / blk) * bytes;
}

class Reader {
  constructor(buf) {
    this.b = buf;
    this.o = 0;
  }
  u32() {
    const v = this.b.readUInt32LE(this.o);
    this.o += 4;
    return v;
  }
  u64() {
    const v = this.b.readBigUInt64LE(this.o);
    this.o += 8;
    return Number(v);
  }
  str() {
    const n = this.u64();
    const s = this.b.toString('utf8', this.o, this.o + n);
    this.o += n;
    return s;
  }
  value(type) {
    switch (type) {
      case T.U8: return this.b.readUInt8(this.o++);
      case T.I8: return this.b.readInt8(this.o++);
      case T.U16: { const v = this.b.readUInt16LE(this.o); this.o += 2; return v; }
      case T.I16: { const v = this.b.readInt16LE(this.o); this.o += 2; return v; }
      case T.U32: return this.u32();
      case T.I32: { const v = this.b.readInt32LE(this.o); this.o += 4; return v; }
      case T.F32: { const v = this.b.readFloatLE(this.o); this.o += 4; return v; }
      case T.BOOL: return this.b.readUInt8(this.o++) !== 0;
      case T.STRING: return this.str();
      case T.U64: return this.u64();
      case T.I64: { const v = Number(this.b.readBigInt64LE(this.o)); this.o += 8; return v; }
      case T.F64: { const v = this.b.readDoubleLE(this.o); this.o += 8; return v; }
      case T.ARRAY: {
        const itemType = this.u32();
        const n = this.u64();
        const items = new Array(n);
        for (let i = 0; i < n; i++) items[i] = this.value(itemType);
        return { itemType, items };
      }
      default:
        throw new Error(`GGUF value type ${type} at ${this.o}`);
    }
  }
}

/** Parses a GGUF header: { version, kvs: [{key, type, value}], tensors: [{name, dims, type, offset}], alignment, dataOffset }. */
export function parseHeader(buf) {
  const r = new Reader(buf);
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not a GGUF file');
  r.o = 4;
  const version = r.u32();
  const nTensors = r.u64();
  const nKv = r.u64();
  const kvs = [];
  for (let i = 0; i < nKv; i++) {
    const key = r.str();
    const type = r.u32();
    kvs.push({ key, type, value: r.value(type) });
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.str();
    const nd = r.u32();
    const dims = [];
    for (let d = 0; d < nd; d++) dims.push(r.u64());
    const typeId = r.u32();
    const offset = r.u64();
    tensors.push({ name, dims, type: GGML_BY_ID[typeId]?.[0] ?? `type${typeId}`, offset });
  }
  const alignment = kvs.find((k) => k.key === 'general.alignment')?.value ?? 32;
  const dataOffset = Math.ceil(r.o / alignment) * alignment;
  return { version, kvs, tensors, alignment, dataOffset };
}

class Writer {
  constructor() {
    this.parts = [];
  }
  push(b) {
    this.parts.push(b);
  }
  u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  value(type, v) {
    const b = Buffer.alloc(SCALAR_SIZE[type] ?? 0);
    switch (type) {
      case T.U8: b.writeUInt8(v); break;
      case T.I8: b.writeInt8(v); break;
      case T.U16: b.writeUInt16LE(v); break;
      case T.I16: b.writeInt16LE(v); break;
      case T.U32: b.writeUInt32LE(v); break;
      case T.I32: b.writeInt32LE(v); break;
      case T.F32: b.writeFloatLE(v); break;
      case T.BOOL: b.writeUInt8(v ? 1 : 0); break;
      case T.U64: b.writeBigUInt64LE(BigInt(v)); break;
      case T.I64: b.writeBigInt64LE(BigInt(v)); break;
      case T.F64: b.writeDoubleLE(v); break;
      case T.STRING: this.str(v); return;
      case T.ARRAY:
        this.u32(v.itemType);
        this.u64(v.items.length);
        for (const it of v.items) this.value(v.itemType, it);
        return;
      default:
        throw new Error(`GGUF value type ${type}`);
    }
    this.push(b);
  }
  concat() {
    return Buffer.concat(this.parts);
  }
}

/**
 * Writes a GGUF header for `kvs` and `tensors` ({name, dims, type}); tensor offsets are laid
 * out in order, each aligned. Returns { header (padded to the data start), dataOffset,
 * tensors (with offset, bytes), totalBytes }.
 */
export function writeHeader(kvs, tensors, alignment = 32) {
  const w = new Writer();
  w.push(Buffer.from('GGUF', 'latin1'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const kv of kvs) {
    w.str(kv.key);
    w.u32(kv.type);
    w.value(kv.type, kv.value);
  }
  let off = 0;
  const laid = [];
  for (const t of tensors) {
    const bytes = tensorBytes(t.type, t.dims);
    laid.push({ ...t, offset: off, bytes });
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML[t.type][0]);
    w.u64(off);
    off = Math.ceil((off + bytes) / alignment) * alignment;
  }
  const head = w.concat();
  const dataOffset = Math.ceil(head.length / alignment) * alignment;
  const header = Buffer.concat([head, Buffer.alloc(dataOffset - head.length)]);
  const last = laid[laid.length - 1];
  const totalBytes = dataOffset + (last ? last.offset + last.bytes : 0);
  return { header, dataOffset, tensors: laid, totalBytes };
}

export function setKv(kvs, key, type, value) {
  const i = kvs.findIndex((k) => k.key === key);
  if (i >= 0) kvs[i] = { key, type, value };
  else kvs.push({ key, type, value });
}

/** Copies `src` with its metadata transformed by `edit(kvs)` and the tensor data unchanged. */
export function rewriteMetadata(srcPath, dstPath, edit) {
  const src = readFileSync(srcPath);
  const h = parseHeader(src);
  const kvs = h.kvs.map((k) => ({ ...k }));
  edit(kvs);
  const alignment = kvs.find((k) => k.key === 'general.alignment')?.value ?? 32;
  const out = writeHeader(kvs, h.tensors.map(({ name, dims, type }) => ({ name, dims, type })), alignment);
  // Same order, same sizes, same alignment: the data section is copied as is.
  const fd = openSync(dstPath, 'w');
  try {
    writeSync(fd, out.header);
    writeSync(fd, src.subarray(h.dataOffset));
  } finally {
    closeSync(fd);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The generated models
// ---------------------------------------------------------------------------------------------

/** A deterministic non-GGUF file (LCG bytes). */
export function writeGarbage(path, bytes = 1 << 20) {
  const b = Buffer.alloc(bytes);
  let x = 0x12345678;
  for (let i = 0; i < bytes; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  writeFileSync(path, b);
}

/** The first `fraction` of a model (its header intact, its tensor data cut short). */
export function writeTruncated(srcPath, path, fraction = 0.55) {
  const src = readFileSync(srcPath);
  writeFileSync(path, src.subarray(0, Math.floor(src.length * fraction)));
}

/**
 * A well-formed GGUF whose `general.architecture` is not llama: the fixture's metadata with the
 * architecture renamed and every `llama.*` key moved to `<arch>.*` (the way a converter writes
 * another architecture's keys), tensors unchanged.
 */
export function writeOtherArchitecture(srcPath, path, arch = 'gpt2') {
  rewriteMetadata(srcPath, path, (kvs) => {
    for (const kv of kvs) if (kv.key.startsWith('llama.')) kv.key = arch + kv.key.slice('llama'.length);
    setKv(kvs, 'general.architecture', T.STRING, arch);
    setKv(kvs, 'general.name', T.STRING, `not-llama (${arch})`);
  });
}

/**
 * The header of a llama model that cannot be allocated on SwiftShader's WebGPU device.
 *
 * SwiftShader (Chromium's Vulkan CPU device) reports maxBufferSize = 1 GiB but its
 * `vkAllocateMemory` fails with VK_ERROR_OUT_OF_DEVICE_MEMORY for any buffer over 1 GiB - 16
 * bytes (measured: 1 GiB − 16 allocates, 1 GiB − 8 and − 4 give GPUOutOfMemoryError). The
 * engine splits a matrix into parts of at most `maxStorageBufferBindingSize − 4` bytes by
 * whole rows, so an F32 matrix of `cols` columns gets parts of `4·cols·floor((2^30 − 4) /
 * (4·cols))` bytes: with `cols` a divisor of 2^28 − 1 (= 3·5·29·43·113·127) that is exactly
 * 2^30 − 4, within the limits and unallocatable — a genuine device out-of-memory.
 *
 * cols = ffn = 475107 (= 3·29·43·127), rows = dim = 576 (9 heads of 64): `ffn_down`
 * (F32, 1.09 GB) is the first tensor of the file so its first part is allocated early; the
 * other weights are small Q4_0 / Q8_0 matrices. The tensor data is zeros (served virtually).
 */
export function oomModelHeader(vocabSrcPath) {
  const src = parseHeader(readFileSync(vocabSrcPath));
  const vocab = src.kvs.find((k) => k.key === 'tokenizer.ggml.tokens').value.items.length;
  const kvs = src.kvs
    .filter((k) => k.key.startsWith('tokenizer.') || k.key === 'general.alignment')
    .map((k) => ({ ...k }));
  const dim = 576;
  const ffn = 475107;
  const heads = 9;
  kvs.unshift(
    { key: 'general.architecture', type: T.STRING, value: 'llama' },
    { key: 'general.name', type: T.STRING, value: 'oom-on-swiftshader' },
    { key: 'llama.context_length', type: T.U32, value: 512 },
    { key: 'llama.embedding_length', type: T.U32, value: dim },
    { key: 'llama.block_count', type: T.U32, value: 1 },
    { key: 'llama.feed_forward_length', type: T.U32, value: ffn },
    { key: 'llama.attention.head_count', type: T.U32, value: heads },
    { key: 'llama.attention.head_count_kv', type: T.U32, value: heads },
    { key: 'llama.rope.freq_base', type: T.F32, value: 10000 },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: T.F32, value: 1e-5 },
    { key: 'llama.vocab_size', type: T.U32, value: vocab },
  );
  const tensors = [
    { name: 'blk.0.ffn_down.weight', dims: [ffn, dim], type: 'F32' },
    { name: 'blk.0.ffn_gate.weight', dims: [dim, ffn], type: 'Q4_0' },
    { name: 'blk.0.ffn_up.weight', dims: [dim, ffn], type: 'Q4_0' },
    { name: 'token_embd.weight', dims: [dim, vocab], type: 'Q8_0' },
    { name: 'output.weight', dims: [dim, vocab], type: 'Q8_0' },
    { name: 'output_norm.weight', dims: [dim], type: 'F32' },
    { name: 'blk.0.attn_norm.weight', dims: [dim], type: 'F32' },
    { name: 'blk.0.ffn_norm.weight', dims: [dim], type: 'F32' },
    { name: 'blk.0.attn_q.weight', dims: [dim, dim], type: 'Q8_0' },
    { name: 'blk.0.attn_k.weight', dims: [dim, dim], type: 'Q8_0' },
    { name: 'blk.0.attn_v.weight', dims: [dim, dim], type: 'Q8_0' },
    { name: 'blk.0.attn_output.weight', dims: [dim, dim], type: 'Q8_0' },
  ];
  return writeHeader(kvs, tensors, src.alignment);
}

/** Source text of about `targetTokens` tokens (a Python-ish file), deterministic. */
export function codeFile(lines = 200) {
  const out = ['import math', 'import sys', '', ''];
  for (let i = 0; out.length < lines; i++) {
    out.push(`def function_${i}(values, scale=${i + 1}):`);
    out.push(`    """Return the scaled sum of values (helper ${i})."""`);
    out.push(`    total = 0`);
    out.push(`    for v in values:`);
    out.push(`        total += math.sqrt(abs(v)) * scale`);
    out.push(`    return total + ${i * 7 % 13}`);
    out.push('');
  }
  return out.join('\n');
}
