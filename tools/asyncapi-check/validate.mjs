// Parse an AsyncAPI document with the official parser (@asyncapi/parser) and fail on any
// error-severity diagnostic. Usage: node validate.mjs FILE
// Exit 0: valid (warnings are printed but allowed); 1: invalid; 2: usage or unreadable file.
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const SEVERITY = { 0: 'error', 1: 'warning', 2: 'info', 3: 'hint' };

const file = process.argv[2];
if (!file || process.argv.length > 3) {
  console.error('usage: node validate.mjs FILE');
  process.exit(2);
}

let text;
try {
  text = await readFile(file, 'utf8');
} catch (err) {
  console.error(`error: ${file}: ${err.message}`);
  process.exit(2);
}

const { document, diagnostics } = await new Parser().parse(text, { source: file });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
// Errors and warnings; the info and hint diagnostics (e.g. that a newer AsyncAPI exists) are noise.
for (const d of diagnostics.filter((x) => x.severity <= DiagnosticSeverity.Warning)) {
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  const line = d.range ? `:${d.range.start.line + 1}` : '';
  const stream = d.severity === DiagnosticSeverity.Error ? console.error : console.log;
  stream(`${file}${line}: ${SEVERITY[d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${where}`);
}
if (errors.length > 0 || document === undefined) {
  console.error(`error: ${file}: ${errors.length} error(s); not a valid AsyncAPI document`);
  process.exit(1);
}
const channels = document.channels().length;
const messages = document.components().messages().length;
console.log(`ok: ${file}: AsyncAPI ${document.version()}, ${channels} channels, ${messages} messages`);
