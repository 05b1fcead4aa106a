// The tabs of a journey's pages: its builder and its report.
import { Link } from '../router';

/** The tabs of a journey's pages: the builder and the report. */
export function JourneyTabs({ journeyId, active }: { journeyId: string; active: 'builder' | 'report' }) {
  const base = `/journeys/${encodeURIComponent(journeyId)}`;
  return (
    <nav className="tabs" aria-label="Journey">
      <Link to={base} className={active === 'builder' ? 'active' : ''} aria-current={active === 'builder' ? 'page' : undefined}>
        Builder
      </Link>
      <Link to={`${base}/report`} className={active === 'report' ? 'active' : ''} aria-current={active === 'report' ? 'page' : undefined}>
        Report
      </Link>
    </nav>
  );
}
