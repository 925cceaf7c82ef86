// Onboarding errors: stable codes callers branch on, and an uncertain write
// that names the request and GitLab's own message when there is one.
import t from 'tap';
import { OnboardingError, UncertainWriteError } from '../../src/onboarding/errors.js';

t.test('an OnboardingError carries its code, message and status', async (t) => {
  const err = new OnboardingError('NOT_FOUND', "group 'x' not found", 404);
  t.ok(err instanceof Error);
  t.equal(err.name, 'OnboardingError');
  t.equal(err.code, 'NOT_FOUND');
  t.equal(err.message, "group 'x' not found");
  t.equal(err.status, 404);
  t.equal(new OnboardingError('USAGE', 'bad').status, undefined);
});

t.test('an uncertain write is WRITE_OUTCOME_UNKNOWN and says what was sent', async (t) => {
  const plain = new UncertainWriteError('POST', 'projects/1/issues', 'HTTP 502', 502);
  t.ok(plain instanceof OnboardingError, 'callers catching OnboardingError see it');
  t.equal(plain.code, 'WRITE_OUTCOME_UNKNOWN');
  t.equal(plain.status, 502);
  t.equal(plain.message, 'POST projects/1/issues: outcome unknown (HTTP 502)');
  t.equal(plain.gitlabMessage, undefined);
  const fromGitLab = new UncertainWriteError('POST', 'ai/duo_workflows/workflows', 'HTTP 500', 500, 'Could not create workload');
  t.equal(fromGitLab.message, 'POST ai/duo_workflows/workflows: outcome unknown (HTTP 500: Could not create workload)');
  t.equal(fromGitLab.gitlabMessage, 'Could not create workload');
});
