/** The esbuild target of every bundle: `node` and the oldest version package.json's `engines.node` accepts. */
export declare const NODE_TARGET: string;
