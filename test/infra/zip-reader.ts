// Reads a ZIP the way an unzip tool does (end record -> central directory -> local headers), checking
// every entry's CRC, so the package tests see what Azure will see when it mounts the zip.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

export interface ZipListing {
  names: string[];
  read(name: string): Buffer;
}

function crc32(data: Buffer): number {
  return (zlib as unknown as { crc32(d: Buffer): number }).crc32(data) >>> 0;
}

export function readZip(file: string): ZipListing {
  const buf = fs.readFileSync(file);
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error(`${file}: no end of central directory record`);
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const entries = new Map<string, { method: number; crc: number; compressed: number; size: number; offset: number }>();
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new Error(`${file}: bad central directory entry ${i}`);
    const method = buf.readUInt16LE(at + 10);
    const crc = buf.readUInt32LE(at + 16);
    const compressed = buf.readUInt32LE(at + 20);
    const size = buf.readUInt32LE(at + 24);
    const nameLength = buf.readUInt16LE(at + 28);
    const extra = buf.readUInt16LE(at + 30);
    const comment = buf.readUInt16LE(at + 32);
    const offset = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLength);
    entries.set(name, { method, crc, compressed, size, offset });
    names.push(name);
    at += 46 + nameLength + extra + comment;
  }
  return {
    names,
    read(name) {
      const e = entries.get(name);
      if (!e) throw new Error(`${name} is not in ${file}`);
      if (buf.readUInt32LE(e.offset) !== 0x04034b50) throw new Error(`${name}: bad local header`);
      const start = e.offset + 30 + buf.readUInt16LE(e.offset + 26) + buf.readUInt16LE(e.offset + 28);
      const raw = buf.subarray(start, start + e.compressed);
      const data = e.method === 8 ? zlib.inflateRawSync(raw) : Buffer.from(raw);
      if (data.length !== e.size || crc32(data) !== e.crc) throw new Error(`${name}: size or CRC mismatch`);
      return data;
    },
  };
}
