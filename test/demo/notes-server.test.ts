import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { sampleText } from '../../src/demo/notes-server.js';

const entry = new URL('../../src/demo/notes-server.ts', import.meta.url).pathname;

async function connect(env: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: 'demo-test', version: '0' });
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', 'tsx', entry],
    env: { PATH: process.env.PATH ?? '', ...env },
    stderr: 'inherit',
  });
  await client.connect(transport);
  return client;
}

function firstText(r: unknown): string {
  const c = (r as { content: { type: string; text?: string }[] }).content[0];
  return c?.text ?? '';
}

test('demo notes server: tools, notes in a data dir, samples, resources and prompts over stdio', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'notes-'));
  const client = await connect({ NOTES_DIR: dir });
  try {
    const { tools } = await client.listTools();
    assert.deepEqual(
      tools.map((t) => t.name).sort(),
      ['delete_note', 'echo', 'fetch_page', 'list_notes', 'read_file', 'read_note', 'write_note'],
    );
    assert.match(firstText(await client.callTool({ name: 'write_note', arguments: { title: 'todo', body: 'buy milk' } })), /Saved/);
    assert.deepEqual(readdirSync(dir), ['todo.md']);
    assert.equal(firstText(await client.callTool({ name: 'read_note', arguments: { title: 'todo' } })), 'buy milk');
    assert.equal(firstText(await client.callTool({ name: 'list_notes', arguments: {} })), 'todo');
    const res = await client.readResource({ uri: 'notes://todo' });
    assert.equal((res.contents[0] as { text: string }).text, 'buy milk');
    assert.match(firstText(await client.callTool({ name: 'delete_note', arguments: { title: 'todo' } })), /Deleted/);
    const missing = await client.callTool({ name: 'read_note', arguments: { title: 'todo' } });
    assert.equal(missing.isError, true);

    // A title that tries to leave the data folder is refused by the input schema.
    const bad = await client.callTool({ name: 'write_note', arguments: { title: '../escape', body: 'x' } });
    assert.equal(bad.isError, true);
    assert.deepEqual(readdirSync(dir), []);

    assert.equal(firstText(await client.callTool({ name: 'echo', arguments: { text: 'héllo' } })), 'héllo');
    const page = firstText(await client.callTool({ name: 'fetch_page', arguments: { url: 'https://example.com/', sample: 'all' } }));
    assert.ok(page.includes('\u001b['), 'ANSI escape present');
    assert.match(page, /[\u{E0000}-\u{E007F}]/u); // tag characters
    assert.match(page, /Ignore all previous instructions/);
    assert.match(page, /AKIAIOSFODNN7EXAMPLE/);
    const prompt = await client.getPrompt({ name: 'review_page', arguments: { sample: 'injection' } });
    assert.match(JSON.stringify(prompt.messages), /Ignore all previous instructions/);
  } finally {
    await client.close();
  }
});

test('demo samples: clean text carries none of the hostile markers', () => {
  const clean = sampleText('clean', 'x');
  assert.ok(!clean.includes('\u001b'));
  assert.doesNotMatch(clean, /[\u200b\u202e]|[\u{E0000}-\u{E007F}]/u);
  assert.doesNotMatch(clean, /ignore/i);
});
