/**
 * Operational logger (pino, JSON lines on stderr). Redacts every header and field that may carry
 * a credential, so a token can never reach a log line even by accident.
 */
import { pino, type Logger } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  'Authorization',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  'headers.cookie',
  'headers.dpop',
  'headers["x-api-key"]',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers.dpop',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'clientSecret',
  '*.clientSecret',
  'client_secret',
  '*.client_secret',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'privateKey',
  '*.privateKey',
];

export type { Logger };

export function createLogger(level = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: { service: 'mcp-bastion' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination as unknown as pino.DestinationStream,
  );
}
