/**
 * A bearer token the gateway reads from a file (admin.token, metrics.token), rotated under a
 * running server: the tests of each place it is used drive the same steps through `status`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory holding `token` with `initial` in it. */
export function tokenFile(initial: string): { dir: string; file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-token-file-'));
  const file = join(dir, 'token');
  writeFileSync(file, `${initial}\n`);
  return { dir, file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * `initial` is accepted; the file replaced (written aside, renamed over it) puts `next` in force
 * within 5 s and `initial` is refused; the file removed refuses both; written again with `third`
 * (when given), that one is accepted. `status(token)` is the HTTP status of a request with it.
 */
export async function checkTokenFileRotation(
  t: { dir: string; file: string },
  status: (token: string) => Promise<number>,
  tokens: { initial: string; next: string; third?: string },
): Promise<void> {
  const eventually = async (token: string, want: number): Promise<void> => {
    const deadline = Date.now() + 5_000;
    while ((await status(token)) !== want) {
      if (Date.now() > deadline) assert.fail(`${token.slice(0, 4)}… never got ${want}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  assert.equal(await status(tokens.initial), 200);
  writeFileSync(join(t.dir, 'token.next'), `${tokens.next}\n`);
  renameSync(join(t.dir, 'token.next'), t.file);
  await eventually(tokens.next, 200);
  assert.equal(await status(tokens.initial), 401, 'the old token is refused once the new one is in force');
  rmSync(t.file);
  await eventually(tokens.next, 401);
  assert.equal(await status(tokens.initial), 401);
  if (tokens.third !== undefined) {
    writeFileSync(t.file, `${tokens.third}\n`);
    await eventually(tokens.third, 200);
  }
}
