/** Helpers for tests that need Redis: the shared local one, or a private redis-server of their own. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { RedisStateStore, type RedisStateStoreOptions } from '../../src/stores/redis.js';

export const LOCAL_REDIS = 'redis://127.0.0.1:6379';

/** A unique key prefix per test run, so concurrent runs never see each other's keys. */
export function testPrefix(tag: string): string {
  return `bastion-test:${tag}:${randomUUID().slice(0, 8)}:`;
}

function ping(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => s.write('PING\r\n'));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** Fails with a clear message when the local Redis is not running (.ci/run starts it). */
export async function requireLocalRedis(): Promise<void> {
  if (!(await ping(6379))) {
    throw new Error('These tests need the local Redis at 127.0.0.1:6379 and it is not answering PING. Start it: redis-server --daemonize yes --port 6379 --save "" --appendonly no (.ci/run does this).');
  }
}

export async function localStore(tag: string, extra: Partial<RedisStateStoreOptions> = {}): Promise<RedisStateStore> {
  await requireLocalRedis();
  const s = new RedisStateStore({ url: LOCAL_REDIS, keyPrefix: testPrefix(tag), ...extra });
  if (!(await s.waitReady(5000))) throw new Error('RedisStateStore did not become ready against 127.0.0.1:6379');
  return s;
}

export { freePort } from '../helpers/raw-http.js';

/** A private redis-server on `port` (no persistence), killed and restarted by the test that owns it. */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  /** `dir`: persist (AOF, fsync always) there, so data survives a kill and restart. */
  constructor(
    readonly port: number,
    readonly dir?: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const persist = this.dir ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir] : ['--appendonly', 'no'];
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persist], { stdio: 'ignore' });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await ping(this.port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} (is redis-server installed and port ${this.port} free?)`);
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not answer PING within 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGKILL');
    await once(c, 'exit');
  }
}
