import { useEffect, useMemo, useRef, useState } from 'react';
import type { ConsoleBatchFragment, ConsoleGeneratedTransitionFragment } from '../../src/generated/gql/graphql';
import type { Api } from './api/client';
import { SignInForm } from './auth/SignInForm';
import { useSession, type Viewer } from './auth/useSession';
import { BatchView } from './batches/BatchView';
import { RecentBatches } from './batches/RecentBatches';
import { CombinedVideos } from './combine/CombinedVideos';
import { CreateBatchForm } from './create/CreateBatchForm';
import { batchHref, navigate, sharedLink, useBatchRoute, useNavigateOnClick } from './router';
import { SharedBatchPage } from './share/SharedBatchPage';

export function App() {
  // A shared read-only link carries its own credential: no sign-in, no key.
  const shared = useMemo(sharedLink, []);
  if (shared) return <SharedBatchPage token={shared.token} batchId={shared.batchId} />;
  return <SignedInApp />;
}

function SignedInApp() {
  const { session, signIn, signOut } = useSession();
  if (session.state === 'checking') {
    return (
      <main id="main" className="sign-in" aria-busy="true">
        <p>Signing in…</p>
      </main>
    );
  }
  if (session.state === 'signed-out') return <SignInForm signIn={signIn} notice={session.notice} />;
  return <Console api={session.api} viewer={session.viewer} signOut={signOut} />;
}

function Console({ api, viewer, signOut }: { api: Api; viewer: Viewer; signOut(): void }) {
  const batchId = useBatchRoute();
  const [openBatch, setOpenBatch] = useState<ConsoleBatchFragment | null>(null);
  const [latestCombined, setLatestCombined] = useState<ConsoleGeneratedTransitionFragment | null>(null);
  const onLinkClick = useNavigateOnClick();
  const main = useRef<HTMLElement>(null);

  // A new page for assistive technology: move focus to its heading, as a page load would.
  const firstRender = useRef(true);
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      // Just signed in: the sign-in form (and the focus in it) is gone. Start from the top of the
      // page, as a page load would, so Tab reaches "Skip to content" first (browsers would
      // otherwise continue from where the removed form was).
      if (document.activeElement === document.body || !document.activeElement) {
        document.body.tabIndex = -1;
        document.body.focus({ preventScroll: true });
        document.body.removeAttribute('tabindex');
      }
      return;
    }
    main.current?.querySelector<HTMLElement>('h2')?.focus();
  }, [batchId]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <a className="brand" href="/" onClick={onLinkClick}>
          Segue <span>console</span>
        </a>
        <nav aria-label="Console">
          <a href={batchHref(null)} onClick={onLinkClick} aria-current={batchId ? undefined : 'page'}>
            New batch
          </a>
        </nav>
        <div className="account">
          <span className="muted">
            Signed in as <strong data-testid="viewer-name">{viewer.name}</strong>
          </span>
          <button type="button" className="quiet" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <div className="layout">
        <main id="main" ref={main} tabIndex={-1}>
          {batchId ? (
            <BatchView key={batchId} api={api} batchId={batchId} onBatch={setOpenBatch} onCombined={setLatestCombined} />
          ) : (
            <CreateBatchForm api={api} onCreated={(id) => navigate(batchHref(id))} />
          )}
        </main>
        <aside>
          <RecentBatches api={api} openBatchId={batchId} openBatch={batchId ? openBatch : null} />
          <CombinedVideos api={api} latest={latestCombined} />
        </aside>
      </div>
    </>
  );
}
