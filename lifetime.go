package boxrun

import (
	"context"
	"fmt"
	"time"
)

// lifeState is the in-memory timer state of a running box with a limit.
type lifeState struct {
	ttl, idle    time.Duration
	action       ExpireAction
	startedAt    time.Time
	lastActivity time.Time
	persistedAt  time.Time // last write of lastActivity
	active       int       // running execs and attach sessions
}

// deadline returns when the box expires next and why ("" when never).
func (l *lifeState) deadline() (time.Time, string) {
	var at time.Time
	why := ""
	if l.ttl > 0 {
		at, why = l.startedAt.Add(l.ttl), "ttl"
	}
	if l.idle > 0 && l.active == 0 {
		if t := l.lastActivity.Add(l.idle); why == "" || t.Before(at) {
			at, why = t, "idle"
		}
	}
	return at, why
}

// validateLifetime checks and defaults the lifetime fields of spec.
func (m *Manager) validateLifetime(spec *BoxSpec) error {
	switch {
	case spec.TTL < 0:
		return invalid("ttl must not be negative")
	case spec.IdleTimeout < 0:
		return invalid("idle_timeout must not be negative")
	}
	if spec.IdleTimeout == 0 && spec.OnExpire == "" && !spec.Network && m.cfg.hibernateAfter > 0 {
		// WithHibernateAfter: idle boxes hibernate. Not boxes with a
		// network, unless they ask (on_expire): a hibernated box holds no
		// host port, so its resume could find one taken.
		spec.IdleTimeout, spec.OnExpire = m.cfg.hibernateAfter, ExpireHibernate
	}
	if spec.TTL == 0 {
		spec.TTL = m.cfg.defaultTTL
	}
	if spec.IdleTimeout == 0 {
		spec.IdleTimeout = m.cfg.defaultIdle
	}
	switch spec.OnExpire {
	case "":
		spec.OnExpire = ExpireStop
	case ExpireStop, ExpireRemove, ExpireHibernate:
	default:
		return invalid(fmt.Sprintf("on_expire must be %q, %q or %q", ExpireStop, ExpireRemove, ExpireHibernate))
	}
	return nil
}

// armLifetime (re)starts the timers of a box that just started.
func (m *Manager) armLifetime(boxID string, ttl, idle time.Duration, action ExpireAction, startedAt time.Time, last time.Time) {
	if ttl <= 0 && idle <= 0 {
		return
	}
	if last.Before(startedAt) {
		last = startedAt
	}
	m.lifeMu.Lock()
	m.life[boxID] = &lifeState{ttl: ttl, idle: idle, action: action, startedAt: startedAt, lastActivity: last, persistedAt: last}
	m.lifeMu.Unlock()
	m.wakeReaper()
}

// disarmLifetime stops the timers of a box (stopped or removed).
func (m *Manager) disarmLifetime(boxID string) {
	m.lifeMu.Lock()
	delete(m.life, boxID)
	m.lifeMu.Unlock()
}

func (m *Manager) wakeReaper() {
	select {
	case m.lifeWake <- struct{}{}:
	default:
	}
}

// touch records activity (exec, attach, copy) on a box: its idle timer
// starts over. The time is persisted at most once a second per box, so a
// restart may shorten an idle period by that much but never extends it.
func (m *Manager) touch(boxID string) {
	now := m.now()
	m.lifeMu.Lock()
	l := m.life[boxID]
	persist := false
	if l != nil {
		l.lastActivity = now
		if now.Sub(l.persistedAt) >= time.Second {
			l.persistedAt, persist = now, true
		}
	}
	m.lifeMu.Unlock()
	if persist {
		if err := m.store.touchLifetime(context.WithoutCancel(m.ctx), boxID, FormatTime(now)); err != nil {
			m.log.Warn("lifetime: persist activity", "box", boxID, "err", err)
		}
	}
}

// beginBusy marks a box active (an exec or attach session runs: it is
// not idle) until the matching endBusy; both count as activity.
func (m *Manager) beginBusy(boxID string) {
	m.touch(boxID)
	m.lifeMu.Lock()
	if l := m.life[boxID]; l != nil {
		l.active++
	}
	m.lifeMu.Unlock()
}

// endBusy ends what beginBusy began.
func (m *Manager) endBusy(boxID string) {
	m.lifeMu.Lock()
	if l := m.life[boxID]; l != nil && l.active > 0 {
		l.active--
	}
	m.lifeMu.Unlock()
	m.touch(boxID)
	m.wakeReaper()
}

// loadLifetimes arms the timers of every running box from SQLite (Open):
// deadlines are computed from the stored start and last activity, so a
// restart never extends a lifetime; one that passed while the server was
// down fires at once.
func (m *Manager) loadLifetimes(ctx context.Context) error {
	rows, err := m.store.runningLifetimes(ctx)
	if err != nil {
		return err
	}
	for _, r := range rows {
		m.armLifetime(r.BoxID, r.TTL, r.IdleTimeout, r.OnExpire, r.startedAt, r.last)
	}
	return nil
}

// reaper fires the timers until the Manager closes.
func (m *Manager) reaper() {
	defer m.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := m.now()
		var nextAt time.Time
		var due []string
		m.lifeMu.Lock()
		for id, l := range m.life {
			at, why := l.deadline()
			if why == "" {
				continue
			}
			if !at.After(now) {
				due = append(due, id)
			} else if nextAt.IsZero() || at.Before(nextAt) {
				nextAt = at
			}
		}
		m.lifeMu.Unlock()
		for _, id := range due {
			m.expire(id)
		}
		if len(due) > 0 {
			continue
		}
		wait := time.Hour
		if !nextAt.IsZero() {
			wait = max(nextAt.Sub(now), 10*time.Millisecond)
		}
		t.Reset(wait)
		select {
		case <-m.ctx.Done():
			return
		case <-m.lifeWake:
			if !t.Stop() {
				<-t.C
			}
		case <-t.C:
		}
	}
}

// expire stops or removes a box whose deadline passed (checked again under
// the box lock), journaling box.expired first.
func (m *Manager) expire(boxID string) {
	if err := m.enter(); err != nil {
		return
	}
	defer m.leave()
	ctx := m.ctx
	b, unlock, err := m.getLocked(ctx, boxID)
	if err != nil {
		m.disarmLifetime(boxID)
		return
	}
	defer unlock()
	m.lifeMu.Lock()
	l := m.life[boxID]
	var why string
	if l != nil {
		var at time.Time
		at, why = l.deadline()
		if why != "" && at.After(m.now()) {
			why = "" // activity meanwhile
		}
	}
	var action ExpireAction
	if l != nil {
		action = l.action
	}
	m.lifeMu.Unlock()
	if why == "" {
		return
	}
	m.disarmLifetime(boxID)
	if b.Status != StatusRunning {
		return
	}
	m.log.Info("lifetime: box expired", "box", b.ID, "by", why, "action", action)
	if action == ExpireHibernate {
		m.hibernateExpired(ctx, b) // not an expiry: the box resumes on use
		return
	}
	if err := m.store.setExpired(ctx, b.ID, why); err != nil {
		m.log.Warn("lifetime: record expiry", "box", b.ID, "err", err)
	}
	if action == ExpireRemove {
		ev, err := m.store.updateBox(ctx, b, EventBoxExpired, FormatTime(m.now()))
		if err == nil {
			m.bus.publish(ev)
		}
		if err := m.removeLocked(ctx, b, true); err != nil {
			m.log.Warn("lifetime: remove", "box", b.ID, "err", err)
		}
		return
	}
	if _, err := m.stopLocked(ctx, b); err != nil {
		m.log.Warn("lifetime: stop", "box", b.ID, "err", err)
		return
	}
	ev, err := m.store.updateBox(ctx, b, EventBoxExpired, FormatTime(m.now()))
	if err == nil {
		m.bus.publish(ev)
	}
}

// Lifetime reports a box's lifetime limits and when they fire. Errors:
// BOX_NOT_FOUND.
func (m *Manager) Lifetime(ctx context.Context, box string) (*Lifetime, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, err
	}
	r, err := m.store.getLifetime(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	lt := &Lifetime{BoxID: b.ID, OnExpire: ExpireStop}
	if r != nil {
		lt.TTL, lt.IdleTimeout, lt.OnExpire, lt.ExpiredBy = r.TTL, r.IdleTimeout, r.OnExpire, r.expiredBy
		if !r.last.IsZero() {
			t := r.last
			lt.LastActivityAt = &t
		}
	}
	lt.TTLMS, lt.IdleMS = lt.TTL.Milliseconds(), lt.IdleTimeout.Milliseconds()
	if h, err := m.store.hibernationOf(ctx, b.ID); err == nil && h != nil && b.Status == StatusStopped {
		lt.Hibernated = true
	}
	m.lifeMu.Lock()
	if l := m.life[b.ID]; l != nil {
		if l.ttl > 0 {
			t := l.startedAt.Add(l.ttl)
			lt.ExpiresAt = &t
		}
		if l.idle > 0 && l.active == 0 {
			t := l.lastActivity.Add(l.idle)
			lt.IdleExpiresAt = &t
		}
		la := l.lastActivity
		lt.LastActivityAt = &la
	}
	m.lifeMu.Unlock()
	return lt, nil
}
