/** Types for daemon-launch.mjs (plain JavaScript: the launcher uses it before any TypeScript loader). */
export const DAEMON_NODE_FLAGS: readonly string[];
export function hasDaemonFlags(execArgv?: readonly string[], nodeOptions?: string): boolean;
export function runDaemonWithFlags(argv?: readonly string[]): Promise<never>;
