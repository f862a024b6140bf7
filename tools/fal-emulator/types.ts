/** The emulator's public shapes: what tests, benches and the control API see. */

export interface FalEmulatorOptions {
  /** Default 0: a random free port. */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** How long a job stays IN_PROGRESS; default 1000. 0 completes at once (still via IN_PROGRESS). */
  latencyMs?: number;
  /** Uniform +/- jitter around latencyMs; default 0. */
  latencyJitterMs?: number;
  /** fal's per-account limit on jobs IN_PROGRESS at once; the rest wait IN_QUEUE. Default Infinity. */
  capacity?: number;
  /** When set, queue calls without `Authorization: Key <apiKey>` get 401. Default null (any key). */
  apiKey?: string | null;
  /** Cancel of an IN_PROGRESS job: 'complete' (default; like Kling, it still completes and is billed) or 'stop'. */
  cancelRunning?: 'complete' | 'stop';
  /** A comment line on every open status stream this often, as fal sends one every 15 s; default 15000. */
  streamKeepAliveMs?: number;
  /**
   * A failed request's COMPLETED status carries `error` and `error_type`, as fal's newer responses
   * do (default true); false answers as older ones, whose status said only COMPLETED (PROTOCOL §3).
   */
  statusErrors?: boolean;
  /** Delivery attempts per webhook; default { attempts: 3, delayMs: 200 }. */
  webhookRetry?: { attempts: number; delayMs: number };
}

export type EmulatorSettings = Required<Omit<FalEmulatorOptions, 'port' | 'host'>>;

export type ConfigPatch = Partial<Pick<FalEmulatorOptions, 'latencyMs' | 'latencyJitterMs' | 'capacity' | 'cancelRunning' | 'apiKey' | 'streamKeepAliveMs' | 'statusErrors'>>;

export interface FalCounters {
  /** Accepted submits (jobs created), including those whose response was dropped. */
  submitted: number;
  /** Submits answered with an injected error (no job created). */
  rejectedSubmits: number;
  inQueue: number;
  inProgress: number;
  /** inQueue + inProgress: accepted and not yet COMPLETED. */
  inFlight: number;
  maxInFlight: number;
  maxInProgress: number;
  /** Jobs that reached COMPLETED, whatever the outcome. */
  completed: number;
  succeeded: number;
  failed: number;
  canceled: number;
  /** Accepted submits whose input (canonical JSON) equals an earlier accepted submit's: paid twice on fal. */
  duplicateInputs: number;
  /** Status calls, SSE status streams included. */
  statusCalls: number;
  /** SSE status streams opened. */
  streamsOpened: number;
  /** SSE status streams open now. */
  streamsOpen: number;
  /** Streams the client closed before they ended (cut rather than read to their end). */
  streamsCut: number;
  resultCalls: number;
  cancelCalls: number;
  /** Status, result or cancel calls, and PUTs of uploads, left unanswered by a `hang` or `stallBody` fault. */
  hungCalls: number;
  /** Kept-alive connections closed unanswered by a `resetReused` fault. */
  connectionsReset: number;
  /** Automatic deliveries only; redeliverWebhook() is a test action and is not counted. */
  webhookAttempts: number;
  /** Deliveries answered with a 2xx. */
  webhooksDelivered: number;
  /** Files uploaded to fal's storage (PUTs completed), and their bytes. */
  uploads: number;
  uploadedBytes: number;
  /** PUTs of an upload's bytes answered with an injected error (`on: 'upload'` faults). */
  uploadsRefused: number;
  /** TCP connections opened to the emulator (fal's API and its files alike): what clients do not reuse. */
  connections: number;
}

export type FalJobStatus = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED';
export type FalOutcome = 'ok' | 'error' | 'canceled';

export interface FalRequestRecord {
  requestId: string;
  endpointId: string;
  input: unknown;
  status: FalJobStatus;
  outcome?: FalOutcome;
  webhookUrl?: string;
  submittedAt: number;
  startedAt?: number;
  completedAt?: number;
}

/**
 * A fault fires `times` times (default 1; Infinity allowed). With `rate` (0 < rate <= 1) each
 * matching call meets it only with that probability, as fal's intermittent failures do, and
 * `times` defaults to Infinity.
 */
export type FaultFrequency = { times?: number; rate?: number };

export type FalFault = FaultFrequency &
  (
    /** Answer the next submits with this error, creating no job (429 carries Retry-After when given). */
    | { on: 'submit'; status: number; retryAfterSec?: number }
    /** Accept the job, then destroy the socket unanswered: the "response lost" case (PROTOCOL §5). */
    | { on: 'submit'; dropResponse: true }
    /** Accept the job at once, and answer only `delayMs` later: the answer is on its way meanwhile. */
    | { on: 'submit'; delayMs: number }
    /** Accept the job, send the answer's headers and half its body, then cut the connection. */
    | { on: 'submit'; cutBody: true }
    /**
     * Answer such calls with this HTTP status and a JSON {detail} body, without x-fal-request-id
     * (as a gateway answers), or with it (`withRequestId`: as fal's own service might).
     */
    | { on: 'status' | 'result' | 'cancel'; status: number; withRequestId?: boolean; retryAfterSec?: number }
    /** Answer the result with 200 and a body that holds no output (a proxy's page, a broken payload). */
    | { on: 'result'; malformed: true }
    /** Never answer such calls: the connection stays open and silent until the client gives up. */
    | { on: 'status' | 'result' | 'cancel'; hang: true }
    /**
     * Close the connection, unanswered, when such a call comes on a kept-alive connection that
     * served an earlier call (a server closing an idle connection just as the client reuses it);
     * it waits for such a call, and a call on a new connection is answered.
     */
    | { on: 'status' | 'result' | 'cancel'; resetReused: true }
    /** Answer such calls with their 200 head and the first half of their body, then fall silent (the connection stays open). */
    | { on: 'status' | 'result' | 'cancel'; stallBody: true }
    /** Answer downloads of output files (fal's CDN) with this HTTP status. */
    | { on: 'file'; status: number }
    /**
     * Answer the PUT of an upload's bytes (fal's storage, PROTOCOL §6) with this HTTP status and a
     * JSON {detail} body, storing nothing: once the bytes are in, or (`early`) at once, before
     * reading any of them, as a storage server refusing a signed URL up front does; an early
     * answer leaves the connection open and reads nothing more.
     */
    | { on: 'upload'; status: number; early?: boolean }
    /** Never answer the PUT of an upload's bytes, nor read them: the connection stays open and silent. */
    | { on: 'upload'; hang: true }
    /** A status stream cut off (the connection destroyed) after `afterEvents` events. */
    | { on: 'stream'; cut: true; afterEvents?: number }
    /** A status stream that answers 200 and then never sends a byte (no events, no keep-alive). */
    | { on: 'stream'; silent: true }
    /** A status stream that ends cleanly after `afterEvents` events, before COMPLETED. */
    | { on: 'stream'; closeEarly: true; afterEvents?: number }
    /** A status stream that answers at once and brings each later status `lagMs` late (behind the webhook, which is not). */
    | { on: 'stream'; lagMs: number }
    /** Send the completion webhooks of the next jobs to finish this late (fal's deliveries can lag its status stream, PROTOCOL §7). */
    | { on: 'webhook'; delayMs: number }
    /** Accepted jobs (optionally only those whose input.prompt includes the string) end in error. */
    | { on: 'job'; error: 'server' | 'validation'; promptIncludes?: string }
  );

export interface RedeliverOptions {
  /** Send a body other than the one that was signed. */
  tamperBody?: boolean;
  /** Leave out the X-Fal-Webhook-Signature header. */
  unsigned?: boolean;
  /** Shift the signed timestamp by this many seconds (a correct signature over a stale or future time). */
  timestampOffsetSec?: number;
  /** Send a well-formed signature that does not verify. */
  badSignature?: boolean;
}

export interface FalEmulator {
  /** Base URL, e.g. 'http://127.0.0.1:PORT'; use as the client's proxyUrl ({ url, when: 'always' }). */
  url: string;
  /** `${url}/.well-known/jwks.json` */
  jwksUrl: string;
  counters(): FalCounters;
  requests(): FalRequestRecord[];
  configure(patch: ConfigPatch): void;
  inject(fault: FalFault): void;
  clearFaults(): void;
  /** Counters, requests and faults (keeps options). */
  reset(): void;
  /** POSTs the completion webhook of a finished request again (tests of duplicates and forgeries). Returns the receiver's HTTP status. */
  redeliverWebhook(requestId: string, options?: RedeliverOptions): Promise<number>;
  close(): Promise<void>;
}
