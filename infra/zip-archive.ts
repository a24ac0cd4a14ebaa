/**
 * Writes a plain ZIP (deflate, no ZIP64) with node:zlib, so packaging needs no `zip` binary.
 * Timestamps are fixed, so the same inputs give the same bytes (a reproducible package).
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

export interface ZipEntry {
  /** Path inside the archive, posix separators, no leading slash. */
  name: string;
  data: Buffer;
}

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const UTF8_NAMES = 0x0800;
const STORED = 0;
const DEFLATED = 8;
// 1980-01-01 00:00:00, the earliest DOS date.
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
// "Made by" Unix (3) so the mode bits below are honoured; spec version 2.0.
const MADE_BY_UNIX = (3 << 8) | 20;
const VERSION_NEEDED = 20;
const FILE_MODE = 0o100644;
const MAX_ENTRIES = 0xffff;
const MAX_SIZE = 0xffffffff;

function crc32(data: Buffer): number {
  // zlib.crc32 arrived in Node 20.15/22.2; the engines field allows any Node 20.
  const native = (zlib as unknown as { crc32?: (d: Buffer) => number }).crc32;
  if (native) return native(data) >>> 0;
  let crc = ~0;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

interface EntryFields {
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  nameLength: number;
}

/**
 * The run of fields a local header and its central directory header share, in the same order
 * (version needed to extract through file name length), written from `at`.
 */
function writeEntryFields(b: Buffer, at: number, f: EntryFields): void {
  b.writeUInt16LE(VERSION_NEEDED, at);
  b.writeUInt16LE(UTF8_NAMES, at + 2);
  b.writeUInt16LE(f.method, at + 4);
  b.writeUInt16LE(DOS_TIME, at + 6);
  b.writeUInt16LE(DOS_DATE, at + 8);
  b.writeUInt32LE(f.crc, at + 10);
  b.writeUInt32LE(f.compressedSize, at + 14);
  b.writeUInt32LE(f.size, at + 18);
  b.writeUInt16LE(f.nameLength, at + 22);
}

export interface ZipSummary {
  entries: number;
  bytes: number;
}

/** Writes `entries` to `file` in the order given. */
export function writeZip(file: string, entries: ZipEntry[]): ZipSummary {
  if (entries.length > MAX_ENTRIES) throw new Error(`${entries.length} files: more than a ZIP without ZIP64 holds`);
  const seen = new Set<string>();
  const central: Buffer[] = [];
  const fd = fs.openSync(file, 'w');
  let offset = 0;
  const write = (b: Buffer) => {
    fs.writeSync(fd, b);
    offset += b.length;
  };
  try {
    for (const entry of entries) {
      if (seen.has(entry.name)) throw new Error(`duplicate zip entry ${entry.name}`);
      seen.add(entry.name);
      const name = Buffer.from(entry.name, 'utf8');
      const crc = crc32(entry.data);
      const deflated = zlib.deflateRawSync(entry.data, { level: 6 });
      const useDeflate = deflated.length < entry.data.length;
      const body = useDeflate ? deflated : entry.data;
      if (entry.data.length > MAX_SIZE || offset > MAX_SIZE) throw new Error(`${entry.name}: archive too large without ZIP64`);

      const fields: EntryFields = {
        method: useDeflate ? DEFLATED : STORED,
        crc,
        compressedSize: body.length,
        size: entry.data.length,
        nameLength: name.length,
      };
      const local = Buffer.alloc(30);
      local.writeUInt32LE(LOCAL_HEADER, 0);
      writeEntryFields(local, 4, fields);
      local.writeUInt16LE(0, 28);

      const header = Buffer.alloc(46);
      header.writeUInt32LE(CENTRAL_HEADER, 0);
      header.writeUInt16LE(MADE_BY_UNIX, 4);
      writeEntryFields(header, 6, fields);
      header.writeUInt16LE(0, 30); // extra field length
      header.writeUInt16LE(0, 32); // comment length
      header.writeUInt16LE(0, 34); // disk number
      header.writeUInt16LE(0, 36); // internal attributes
      header.writeUInt32LE((FILE_MODE << 16) >>> 0, 38);
      header.writeUInt32LE(offset, 42);
      central.push(header, name);

      write(local);
      write(name);
      write(body);
    }
    const centralStart = offset;
    for (const b of central) write(b);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(END_OF_CENTRAL_DIRECTORY, 0);
    end.writeUInt16LE(0, 4);
    end.writeUInt16LE(0, 6);
    end.writeUInt16LE(entries.length, 8);
    end.writeUInt16LE(entries.length, 10);
    end.writeUInt32LE(offset - centralStart, 12);
    end.writeUInt32LE(centralStart, 16);
    end.writeUInt16LE(0, 20);
    write(end);
  } finally {
    fs.closeSync(fd);
  }
  return { entries: entries.length, bytes: offset };
}
