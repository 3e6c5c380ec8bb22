import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Command, CommanderError } from 'commander';
import { parseRebootCommand, registerAgentCommand } from '../../src/cli/commands/agent.js';
import { addGlobalFlags } from '../../src/cli/context.js';
import { KURED_REBOOT_COMMAND } from '../helpers/agent-node.js';

const KURED = [...KURED_REBOOT_COMMAND];

/** `fleetmedic agent <args>` through the real flags; only refusals are parsed (a valid line would start the agent). */
async function refusal(args: string[]): Promise<string> {
  const silent = { writeErr: () => {}, writeOut: () => {} };
  const program = new Command('fleetmedic').exitOverride().configureOutput(silent);
  addGlobalFlags(program);
  registerAgentCommand(program);
  const err = await program.parseAsync(['agent', '--node', 'n1', ...args], { from: 'user' }).then(
    () => assert.fail('the agent started'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CommanderError, String(err));
  return err.message;
}

describe('fleetmedic agent: --reboot-command', () => {
  afterEach(() => {
    delete process.env.FLEETMEDIC_REBOOT_COMMAND;
  });

  it("takes a JSON array of strings as the argv, kured's command included, with nothing expanded", () => {
    assert.deepEqual(parseRebootCommand(JSON.stringify(KURED)), KURED);
    assert.deepEqual(parseRebootCommand('["/sbin/reboot"]'), ['/sbin/reboot']);
    assert.deepEqual(parseRebootCommand('["sh-free", "$(id)", "a b", "*"]'), [
      'sh-free',
      '$(id)',
      'a b',
      '*',
    ]);
  });

  for (const [value, why] of [
    ['systemctl reboot', /not JSON: "systemctl reboot"/],
    ['"systemctl"', /got string/],
    ['{"argv":["reboot"]}', /got object/],
    ['null', /got null/],
    ['[]', /got an empty array/],
    ['["systemctl", 1]', /element 1 is number/],
    ['["systemctl", null]', /element 1 is null/],
    ['["systemctl reboot"]', /the first element is the executable, got "systemctl reboot" \(a shell line\?/],
    ['[""]', /the first element is the executable, got ""/],
    ['["reboot", "a\\u0000b"]', /element 1 contains a NUL character/],
    [JSON.stringify(Array.from({ length: 65 }, () => 'x')), /got 65 elements, at most 64/],
  ] as const) {
    it(`refuses ${value.slice(0, 40)}, naming the flag and its variable`, () => {
      assert.throws(
        () => parseRebootCommand(value),
        (err: Error) =>
          err.message.startsWith(
            '--reboot-command / FLEETMEDIC_REBOOT_COMMAND must be a JSON array of strings, the argv of the command (no shell)',
          ) && why.test(err.message),
      );
    });
  }

  it('refuses a bad flag before the agent starts, naming the flag', async () => {
    assert.match(
      await refusal(['--reboot-command', 'systemctl reboot']),
      /option '--reboot-command <json>' argument 'systemctl reboot' is invalid\. --reboot-command \/ FLEETMEDIC_REBOOT_COMMAND must be a JSON array/,
    );
  });

  it('refuses a bad FLEETMEDIC_REBOOT_COMMAND before the agent starts, naming the variable', async () => {
    process.env.FLEETMEDIC_REBOOT_COMMAND = '["systemctl reboot"]';
    assert.match(
      await refusal([]),
      /value '\["systemctl reboot"\]' from env 'FLEETMEDIC_REBOOT_COMMAND' is invalid\. .*the first element is the executable/,
    );
  });

  it('refuses a --reboot-timeout that is not a positive number of seconds, naming it', async () => {
    assert.match(
      await refusal(['--reboot-command', '["reboot"]', '--reboot-timeout', '0']),
      /--reboot-timeout must be a positive number of seconds, got "0"/,
    );
  });
});
