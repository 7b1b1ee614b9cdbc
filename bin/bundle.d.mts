/** Types for bundle.mjs (plain JavaScript, so launchers can use it before any TypeScript loader). */
export function bundled(name: string, entry: string): Promise<string | null>;
export function bundledSync(name: string, entry: string, withPackages?: boolean): string | null;
export const CHUNK_WORKER_KEY: unique symbol;
