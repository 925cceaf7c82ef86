// routes: which runner ↔ GitLab exchanges the proxy observes (docs/runner-protocol.md).
import t from 'tap';
import { routeOf } from '../../../src/runner-proxy/http/routes.js';

t.test('routeOf classifies by method and path', async (t) => {
  t.same(routeOf('POST', '/api/v4/jobs/request'), { route: 'job_request' });
  t.same(routeOf('GET', '/api/v4/jobs/request'), { route: 'other' }, 'only POST requests a job');
  t.same(routeOf('PUT', '/api/v4/jobs/12'), { route: 'job_update', jobId: 12 });
  t.same(routeOf('GET', '/api/v4/jobs/12'), { route: 'other', jobId: 12 });
  t.same(routeOf('PATCH', '/api/v4/jobs/12/trace'), { route: 'trace_patch', jobId: 12 });
  t.same(routeOf('PUT', '/api/v4/jobs/12/trace'), { route: 'other', jobId: 12 }, 'only PATCH uploads the log');
  t.same(routeOf('POST', '/api/v4/jobs/12/artifacts'), { route: 'artifacts', jobId: 12 });
  t.same(routeOf('GET', '/api/v4/runners/router/discovery'), { route: 'router_discovery' });
  t.same(routeOf('POST', '/api/v4/runners/router/discovery'), { route: 'runners' });
  t.same(routeOf('POST', '/api/v4/runners/verify'), { route: 'runners' });
  t.same(routeOf('GET', '/api/v4/projects/1'), { route: 'other' });
  t.same(routeOf(undefined, '/api/v4/jobs/12'), { route: 'other', jobId: 12 }, 'no method: not observed');
});

t.test('routeOf accepts a relative-URL prefix and refuses what is not a job path', async (t) => {
  t.same(routeOf('PUT', '/gitlab/api/v4/jobs/3'), { route: 'job_update', jobId: 3 });
  t.same(routeOf('PATCH', '/gitlab/api/v4/jobs/3/trace'), { route: 'trace_patch', jobId: 3 });
  t.same(routeOf('POST', '/gitlab/api/v4/jobs/request'), { route: 'job_request' });
  t.same(routeOf('PUT', '/api/v4/jobs/99999999999999999999'), { route: 'other' }, 'ids beyond safe integers are not tracked');
  t.same(routeOf('PUT', '/api/v4/jobs/12/'), { route: 'other' });
  t.same(routeOf('PUT', '/api/v4/jobs/abc'), { route: 'other' });
  t.same(routeOf('PATCH', '/api/v4/jobs/12/trace/x'), { route: 'other' });
});
