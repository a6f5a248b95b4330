// One JSON object per line on stdout (errors on stderr): what log shippers parse without rules.
type Fields = Readonly<Record<string, unknown>>;

function write(level: 'info' | 'warn' | 'error', msg: string, fields: Fields): void {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n';
  if (level === 'error') process.stderr.write(line);
  else process.stdout.write(line);
}

export const log = Object.freeze({
  info: (msg: string, fields: Fields = {}) => write('info', msg, fields),
  warn: (msg: string, fields: Fields = {}) => write('warn', msg, fields),
  error: (msg: string, fields: Fields = {}) => write('error', msg, fields),
});
