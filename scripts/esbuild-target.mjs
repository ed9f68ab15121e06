// The esbuild target of every bundle the repository builds (`npm run build`, benchmark children): the
// oldest Node that package.json's `engines.node` accepts, so the two cannot drift apart.
import { readFileSync } from 'node:fs';

const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const oldest = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(engines?.node ?? '')?.[1];
if (oldest === undefined) throw new Error(`package.json: engines.node must read ">=X.Y", not ${JSON.stringify(engines?.node)}`);

export const NODE_TARGET = `node${oldest}`;
