import t from 'tap';
import { endToEnd, header, requestHeaders } from '../../../src/runner-proxy/http/raw-headers.js';

t.test('endToEnd drops hop-by-hop fields and those Connection names, keeping order, case and repeats', async (t) => {
  const raw = ['Content-Type', 'application/json', 'Connection', 'keep-alive, X-Hop', 'x-hop', 'a', 'Keep-Alive', 'timeout=5'];
  raw.push('Set-Cookie', 'a=1', 'TE', 'trailers', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c');
  t.same(endToEnd(raw), ['Content-Type', 'application/json', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
  t.same(endToEnd(['Content-Length', '3', 'X-A', 'b'], new Set(['content-length'])), ['X-A', 'b'], 'a skip set');
  t.same(endToEnd([]), []);
});

t.test('requestHeaders reads the fields the proxy needs in the pass that filters them', async (t) => {
  const h = requestHeaders([
    'Host',
    'proxy:8080',
    'X-Forwarded-For',
    '10.0.0.1',
    'X-Forwarded-For',
    '10.0.0.2',
    'JOB-TOKEN',
    'glcbt-secret',
    'Content-Range',
    '0-99',
    'Connection',
    'close, X-Private',
    'X-Private',
    'p',
    'Proxy-Authorization',
    'Basic x',
    'User-Agent',
    'gitlab-runner 19.4.0',
  ]);
  t.equal(h.xForwardedFor, '10.0.0.1', 'the first X-Forwarded-For');
  t.equal(h.jobToken, 'glcbt-secret');
  t.equal(h.contentRange, '0-99');
  t.same(
    h.forward,
    ['JOB-TOKEN', 'glcbt-secret', 'Content-Range', '0-99', 'User-Agent', 'gitlab-runner 19.4.0'],
    'Host and X-Forwarded-For are set by the proxy, hop-by-hop fields go',
  );
});

t.test('header finds the first value, case-insensitively', async (t) => {
  t.equal(header(['A', '1', 'b', '2', 'B', '3'], 'b'), '2');
  t.equal(header(['A', '1'], 'c'), undefined);
});
