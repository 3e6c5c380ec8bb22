/**
 * fleetmedic's error taxonomy. Every error the product raises on purpose is a {@link FleetmedicError}
 * with a stable `code`, so callers (CLI, activities, webhook) can decide what to do without parsing
 * messages. Activities turn {@link FleetmedicError.permanent} errors into non-retryable Temporal failures.
 */
export class FleetmedicError extends Error {
  /** A stable, machine-readable code, e.g. `PORT_IN_USE`. */
  readonly code: string;
  /** True when retrying cannot help (bad input, missing permission, unknown object). */
  readonly permanent: boolean;

  constructor(code: string, message: string, options: { permanent?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.permanent = options.permanent ?? true;
  }
}

/** Invalid configuration: names the variable (or flag), the value received and what was expected. */
export class ConfigError extends FleetmedicError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONFIG_INVALID', message, { permanent: true, ...options });
  }
}

/** A required tool is missing, broken, or reports the wrong version. */
export class ToolchainError extends FleetmedicError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('TOOLCHAIN', message, { permanent: true, ...options });
  }
}

/** A component of the embedded stack could not bind its port because something else holds it. */
export class PortInUseError extends FleetmedicError {
  constructor(
    readonly component: string,
    readonly port: number,
    readonly host = '127.0.0.1',
  ) {
    super('PORT_IN_USE', `${component}: port ${host}:${port} is already in use by another process`, {
      permanent: true,
    });
  }
}

/** The embedded stack failed to start, stop, or become ready. */
export class StackError extends FleetmedicError {
  constructor(message: string, options: { cause?: unknown; permanent?: boolean } = {}) {
    super('STACK', message, { permanent: options.permanent ?? true, cause: options.cause });
  }
}

/**
 * A simulation-only action was asked of a cluster that does not carry fleetmedic's simulation marker.
 * Stand-in GPU tools and fault injection must never act on a real fleet.
 */
export class NotSimulatedError extends FleetmedicError {
  constructor(message: string) {
    super('NOT_SIMULATED', message, { permanent: true });
  }
}

/** A client in simulated mode was asked to dial an address outside 127.0.0.0/8. */
export class NonLoopbackAddressError extends FleetmedicError {
  /** @param message - the whole message, when the default (a pod address) does not fit. */
  constructor(
    readonly address: string,
    message?: string,
  ) {
    super(
      'NON_LOOPBACK_ADDRESS',
      message ??
        `refusing to connect to ${address}: in simulated mode every pod address must be in 127.0.0.0/8`,
      { permanent: true },
    );
  }
}

/** True when `err`, or any error in its `cause` chain, is a FleetmedicError with the given code. */
export function hasErrorCode(err: unknown, code: string): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof FleetmedicError && e.code === code) return true;
  }
  return false;
}
