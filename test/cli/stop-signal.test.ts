import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const helper = fileURLToPath(new URL('../../src/cli/stop-signal.ts', import.meta.url));

/**
 * A command's process in miniature: it hears SIGTERM (`listen`), then runs a child through execa (as
 * the node agent runs dcgmi), and on the signal takes 200 ms to stop gracefully before it exits 0.
 */
function command(listen: 'onStopSignal' | 'process.once') {
  const register =
    listen === 'onStopSignal'
      ? `const { onStopSignal } = await import(${JSON.stringify(helper)}); onStopSignal(stop);`
      : `process.once('SIGTERM', stop); process.once('SIGINT', stop);`;
  const code = `
    import { execa } from 'execa';
    let tool;
    const stop = (signal) => {
      process.stdout.write('stopping\\n');
      setTimeout(() => {
        process.stdout.write('stopped gracefully on ' + signal + '\\n');
        tool.kill();
        process.exit(0);
      }, 200);
    };
    ${register}
    tool = execa('sleep', ['30']);
    tool.catch(() => {});
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const printed = (text: string) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!out.includes(text)) return;
        child.stdout.off('data', check);
        resolve();
      };
      child.stdout.on('data', check);
      check();
    });
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const ready = printed('ready');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, ready, printed, exited, output: () => out };
}

describe('onStopSignal', () => {
  it('a SIGTERM while an execa child runs reaches the graceful stop (process.once did not)', async () => {
    const ok = command('onStopSignal');
    await ok.ready;
    ok.child.kill('SIGTERM');
    assert.deepEqual(await ok.exited, { code: 0, signal: null });
    assert.match(ok.output(), /stopped gracefully on SIGTERM/);

    // What it replaces: execa's exit hook raised the signal again and the process died at once.
    const once = command('process.once');
    await once.ready;
    once.child.kill('SIGTERM');
    assert.deepEqual(await once.exited, { code: null, signal: 'SIGTERM' });
    assert.doesNotMatch(once.output(), /stopped gracefully/);
  });

  it('a second signal ends the process at once, with the default exit status', async () => {
    const twice = command('onStopSignal');
    await twice.ready;
    twice.child.kill('SIGINT');
    await twice.printed('stopping');
    twice.child.kill('SIGINT');
    assert.deepEqual(await twice.exited, { code: 130, signal: null });
    assert.doesNotMatch(twice.output(), /stopped gracefully/);
  });
});
