/**
 * The start of a run, up to triage: the episode check, the pod restart of the light path, the
 * quarantine, storm damping. A class that needs quarantine, joining at any point, ends up here.
 */
import { maxClass, requiresQuarantine, severityOf } from '../remediation-class.js';
import {
  cls,
  failureText,
  finish,
  go,
  note,
  notify,
  recordEpisodes,
  run,
  STATE_LIMITS,
  timer,
  type Result,
  type Tx,
} from './tx.js';
import { hold } from './waits.js';

/** Starts the run on its episode: a quarantine for classes that need one, else an episode check. */
export function begin(tx: Tx): void {
  const episode = tx.s.episode!;
  if (requiresQuarantine(cls(tx))) {
    const reason = tx.s.episodes.find((e) => e.key === episode)?.reason ?? '';
    go(tx, { name: 'quarantining', episode });
    return run(tx, { type: 'quarantine', episode, reason: `${cls(tx)}: ${reason}` });
  }
  go(tx, { name: 'checking-episode', episode });
  run(tx, { type: 'checkEpisode', episode });
}

/**
 * The node says `key` was handled before: its alerts are re-sends. The run goes on with the other
 * episodes that joined it (the most severe first), or ends when there are none.
 */
function handledEarlier(tx: Tx, key: string): void {
  const { s } = tx;
  s.handledEarlier = [...s.handledEarlier.filter((k) => k !== key), key].slice(-STATE_LIMITS.episodes);
  s.episodes = s.episodes.filter((e) => e.key !== key);
  const next = s.episodes.reduce<(typeof s.episodes)[number] | undefined>(
    (best, e) => (best === undefined || severityOf(e.class) > severityOf(best.class) ? e : best),
    undefined,
  );
  if (next === undefined) return endLight(tx, 'duplicate-episode', `episode ${key} was already handled`);
  note(tx, `episode ${key} was already handled; ${next.key} (${next.class}) joined the run meanwhile`);
  s.class = next.class;
  s.episode = next.key;
  begin(tx);
}

/**
 * Ends a run that took no node out of service. A run whose quarantine is on the node already (a
 * retried quarantine answered otherwise) never ends so: it waits for an operator.
 */
function endLight(
  tx: Tx,
  outcome: 'duplicate-episode' | 'ignored' | 'pods-restarted' | 'automation-blocked',
  detail: string,
): void {
  if (!tx.s.quarantined) return finish(tx, outcome, detail);
  hold(
    tx,
    'quarantine-failed',
    `${detail} (${outcome}), but the node is already quarantined by this run`,
    'quarantine',
  );
}

/** The light path (ignore, restart-app): the episode check is back. */
export function onEpisodeChecked(tx: Tx, r: Result<'checkEpisode'>): void {
  const stage = tx.s.stage;
  const checked = stage.name === 'checking-episode' ? stage.episode : tx.s.episode!;
  const verdict = r.failed ? 'unreadable' : r.verdict;
  if (verdict === 'handled') return handledEarlier(tx, checked);
  if (verdict === 'unreadable') {
    const why = r.failed ? r.message : 'the handled-episodes annotation cannot be read';
    note(tx, `episode record unreadable (${why}): handled as a new episode, not recorded`);
    // No quarantine on this path, so no hold: the operator is told to fix the annotation.
    notify(
      tx,
      'needs-operator',
      `${tx.s.node}: its handled-episodes annotation cannot be read (${why}); fix it`,
    );
  }
  // A class that needs quarantine joined meanwhile: it goes on to quarantine, whatever this episode was.
  if (requiresQuarantine(cls(tx))) return begin(tx);
  if (tx.s.class === 'ignore') {
    if (verdict === 'new') recordEpisodes(tx);
    return endLight(tx, 'ignored', tx.s.reasons[0] ?? 'ignored');
  }
  go(tx, { name: 'restarting-pods' });
  run(tx, { type: 'restartPods', pods: tx.s.pods });
}

/** The pods named by the alerts were restarted, or could not be. */
export function onPodsRestarted(tx: Tx, r: Result<'restartPods'>): void {
  if (r.failed) {
    // Pods on a faulty GPU that will not restart: contain the node instead.
    note(tx, `pod restart failed (${failureText(r)}) -> needs-operator`);
    tx.s.class = maxClass(cls(tx), 'needs-operator');
  }
  if (requiresQuarantine(cls(tx))) return begin(tx);
  if (!r.failed) recordEpisodes(tx);
  endLight(tx, 'pods-restarted', `${r.failed ? 0 : r.restarted} pod(s) restarted, no quarantine`);
}

/** The node is cordoned, or the episode was handled before, or the breaker refused. */
export function onQuarantined(tx: Tx, r: Result<'quarantine'>): void {
  const { s } = tx;
  if (r.failed) return hold(tx, 'quarantine-failed', `quarantine failed (${failureText(r)})`, 'quarantine');
  if (r.kind === 'duplicate-episode')
    return handledEarlier(tx, s.stage.name === 'quarantining' ? s.stage.episode : s.episode!);
  if (r.kind === 'blocked') {
    note(tx, `automatic quarantine blocked: ${r.verdict.detail}`);
    notify(
      tx,
      r.verdict.reason === 'breaker-open' ? 'breaker-tripped' : 'automation-blocked',
      `automatic quarantine of ${s.node} refused (${cls(tx)}): ${r.verdict.detail}`,
    );
    return endLight(tx, 'automation-blocked', r.verdict.detail);
  }
  s.quarantined = true;
  s.gpuCount = r.gpuCount;
  s.preexistingCordon = r.preexistingCordon;
  if (r.hold !== null)
    return hold(tx, 'rejected-earlier', `rejected by ${r.hold.by}: ${r.hold.reason}`, null);
  if (r.episodes === 'unreadable')
    return hold(
      tx,
      'episode-unreadable',
      'the handled-episodes annotation cannot be read, so this alert may be a repaired fault re-sent; fix it and retry',
      'quarantine',
    );
  const burst = r.recentFailures ?? 0;
  if (s.policy.stormSettleMs > 0 && burst >= s.policy.stormFailures) {
    // Containment first: the storm's cordons go before any node's triage.
    const id = timer(tx, 'storm-settle', s.policy.stormSettleMs);
    return go(tx, { name: 'settling', timer: id, failures: burst });
  }
  triage(tx);
}

/** Triage on the node agent: evidence may escalate the class, never lower it. */
export function triage(tx: Tx): void {
  go(tx, { name: 'triage' });
  run(tx, { type: 'triage', expectedGpuCount: tx.s.gpuCount });
}
