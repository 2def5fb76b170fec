/**
 * Fake secrets for tests, built at run time from a seeded generator so the repository holds no
 * string that looks like a live credential and every run sees the same values.
 */
const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function rand(n: number, seed: number, alphabet = B62): string {
  let x = seed >>> 0 || 1;
  let s = '';
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    s += alphabet[x % alphabet.length];
  }
  return s;
}

const UPPER_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const HEX = '0123456789abcdef';
const B64 = B62 + '+/';

export const FAKE = {
  awsAccessKey: 'AKIA' + rand(16, 1, UPPER_DIGITS),
  awsSecretKey: rand(40, 2, B64),
  gcpApiKey: 'AIza' + rand(35, 3),
  githubToken: 'ghp_' + rand(36, 4),
  githubPat: 'github_pat_' + rand(22, 5) + '_' + rand(59, 6),
  gitlabToken: 'glpat-' + rand(20, 7),
  slackToken: 'xoxb-' + rand(11, 8, '0123456789') + '-' + rand(12, 9, '0123456789') + '-' + rand(24, 10),
  slackWebhook: 'https://hooks.slack.com/services/T' + rand(8, 11, UPPER_DIGITS) + '/B' + rand(8, 12, UPPER_DIGITS) + '/' + rand(24, 13),
  stripeKey: 'sk_' + 'live_' + rand(24, 14),
  openaiKey: 'sk-proj-' + rand(48, 15),
  anthropicKey: 'sk-ant-' + 'api03-' + rand(93, 16) + 'AA',
  npmToken: 'npm_' + rand(36, 17),
  sendgridKey: 'SG.' + rand(22, 18) + '.' + rand(43, 19),
  huggingfaceToken: 'hf_' + rand(34, 20, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'),
  jwt: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.' + 'eyJ' + rand(40, 21) + '.' + rand(43, 22),
  bearer: rand(32, 23),
  password: 'Pq7' + rand(9, 24) + '!x',
  genericKey: rand(32, 25),
  highEntropy: rand(40, 26, B64),
  hexDigest: rand(40, 27, HEX),
  pemBody: Array.from({ length: 6 }, (_, i) => rand(64, 100 + i, B64)).join('\n'),
};

export function privateKeyPem(kind = 'RSA PRIVATE KEY'): string {
  return `-----BEGIN ${kind}-----\n${FAKE.pemBody}\n-----END ${kind}-----`;
}
