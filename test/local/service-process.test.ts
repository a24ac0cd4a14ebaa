import { spawnService } from '../../local/service-process';

describe('spawnService', () => {
  it('hands every chunk to an output listener, even far past what output() keeps', async () => {
    // 3 MB of numbered lines after the ready line: output() keeps the last 1 MB only.
    const script = `
      console.log('ready');
      setTimeout(() => {
        const line = (i) => 'line ' + i + ' ' + 'x'.repeat(90) + '\\n';
        let i = 0;
        const write = () => { while (i < 30000) { if (!process.stdout.write(line(i++))) return process.stdout.once('drain', write); } };
        write();
      }, 50);`;
    const service = await spawnService({ name: 'chatty', command: [process.execPath, '-e', script], readyLine: /^ready$/m, timeoutMs: 10_000 });
    let received = '';
    service.onOutput((text) => (received += text));
    expect(await service.exited).toBe(0);

    const lines = received.split('\n').filter(Boolean);
    expect(lines).toHaveLength(30000);
    expect(lines[0]).toMatch(/^line 0 /);
    expect(lines[29999]).toMatch(/^line 29999 /);
    expect(service.output().length).toBeLessThanOrEqual(1 << 20);
  });
});
