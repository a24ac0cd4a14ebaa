/** What a benchmarked process costs, read from /proc (Linux); NaN where /proc is not available. */

/** Resident memory of a process in MB (VmRSS from /proc), or NaN where /proc is not available. */
export async function residentMegabytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return kb ? Number(kb[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}
