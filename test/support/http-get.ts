// A plain GET on loopback for the e2e tests' /metrics and /healthz reads: status, Content-Type and the body as text.
import http from 'node:http';

export interface GetResult {
  status: number;
  type: string;
  body: string;
}

export function get(url: string): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}
