#!/usr/bin/env node
// gitlab-otel: one binary, one subcommand per job to be done.
import { run } from './cli/main.js';

process.exitCode = await run(process.argv.slice(2));
