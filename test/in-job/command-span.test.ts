// The in-job command span: exit codes as a shell reports them, `--attr`
// pairs, and the span built from a command's outcome. Pure; called directly.
import t from 'tap';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { commandSpan, exitCodeOf, parseAttributePairs, type CommandSpanInput } from '../../src/in-job/command-span.js';

t.test('exit codes as a shell reports them, attribute pairs', async (t) => {
  t.equal(exitCodeOf({ kind: 'exit', code: 3 }), 3);
  t.equal(exitCodeOf({ kind: 'signal', signal: 'SIGTERM' }), 143);
  t.equal(exitCodeOf({ kind: 'signal', signal: 'SIGKILL' }), 137);
  t.equal(exitCodeOf({ kind: 'spawn-error', errno: 'ENOENT' }), 127);
  t.equal(exitCodeOf({ kind: 'spawn-error', errno: 'EACCES' }), 126);
  t.same(parseAttributePairs(['a=1', 'url=x=y']), { a: '1', url: 'x=y' });
  t.throws(() => parseAttributePairs(['novalue']), { code: 'USAGE' });
  t.throws(() => parseAttributePairs(['=v']), { code: 'USAGE' });
});

const input: CommandSpanInput = {
  name: 'make test',
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: '1111111111111111',
  command: '/usr/bin/make',
  start: 1n,
  end: 2n,
  outcome: { kind: 'exit', code: 0 },
  attributes: { 'ci.job.id': 4242 },
};

t.test('a successful command: status unset, executable name only, exit code recorded', async (t) => {
  const span = commandSpan(input);
  t.match(span, {
    traceId: input.traceId,
    spanId: input.spanId,
    name: 'make test',
    kind: SpanKind.INTERNAL,
    startTimeUnixNano: 1n,
    endTimeUnixNano: 2n,
    status: { code: SpanStatusCode.UNSET },
  });
  t.same(span.attributes, { 'ci.job.id': 4242, 'process.executable.name': 'make', 'process.exit.code': 0 });
  t.notOk('parentSpanId' in span, 'no parent: a root span');
});

t.test('failures carry error.type and a message naming the cause', async (t) => {
  const exit = commandSpan({ ...input, outcome: { kind: 'exit', code: 3 } });
  t.same(exit.status, { code: SpanStatusCode.ERROR, message: 'exit code 3' });
  t.equal(exit.attributes['error.type'], '3');
  const signal = commandSpan({ ...input, outcome: { kind: 'signal', signal: 'SIGTERM' } });
  t.same(signal.status, { code: SpanStatusCode.ERROR, message: 'terminated by SIGTERM' });
  t.equal(signal.attributes['process.exit.code'], 143);
  t.equal(signal.attributes['error.type'], 'SIGTERM');
  const spawn = commandSpan({ ...input, outcome: { kind: 'spawn-error', errno: 'ENOENT' } });
  t.same(spawn.status, { code: SpanStatusCode.ERROR, message: 'could not start the command (ENOENT)' });
  t.notOk('process.exit.code' in spawn.attributes, 'a command that never ran has no exit code');
  t.equal(spawn.attributes['error.type'], 'ENOENT');
});

t.test('a remote parent and its tracestate are kept', async (t) => {
  const span = commandSpan({
    ...input,
    parent: { traceId: input.traceId, spanId: 'b7ad6b7169203331', sampled: true, traceState: 'gl=1' },
  });
  t.match(span, { parentSpanId: 'b7ad6b7169203331', parentIsRemote: true, traceState: 'gl=1' });
});
