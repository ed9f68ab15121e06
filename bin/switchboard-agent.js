#!/usr/bin/env node
// The registry agent program. TypeScript sources run through tsx, so `npm ci` is the only install step.
import { register } from 'tsx/esm/api';

register();
await import('../registry-agent/main.ts');
