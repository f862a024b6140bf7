/** `npm run cli -- <command>`: operator commands that call the same services as the API. */
import { Command } from 'commander';
import { ConfigError, loadConfig } from '../config.ts';
import { createSegue, type Segue } from '../runtime.ts';
import { registerAccountCommands, registerBudgetCommand, registerDeleteCommand } from './accounts.ts';
import { registerApiCommands } from './api-commands.ts';
import { registerKeyCommands } from './keys.ts';
import { registerOperatorCommands } from './operator.ts';

export type WithSegue = <T>(fn: (segue: Segue) => Promise<T>) => Promise<T>;

const withSegue: WithSegue = async (fn) => {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  // The CLI's stdout belongs to its output (--json is parsed by scripts): logs go to stderr only.
  const { pino } = await import('pino');
  const segue = createSegue(config, { logger: pino({ level: 'warn' }, pino.destination(2)) });
  try {
    return await fn(segue);
  } finally {
    await segue.close();
  }
};

const program = new Command('segue').description('Segue command line').showHelpAfterError();
registerAccountCommands(program, withSegue);
registerBudgetCommand(program, withSegue);
registerDeleteCommand(program, withSegue);
registerKeyCommands(program, withSegue);
registerApiCommands(program, withSegue);
registerOperatorCommands(program, withSegue);

program.parseAsync(process.argv).catch((error: unknown) => {
  const code = (error as { code?: unknown }).code;
  console.error(typeof code === 'string' && /^[A-Z_]+$/.test(code) ? `${code}: ${(error as Error).message}` : error instanceof Error ? error.message : String(error));
  process.exit(1);
});
