package boxapi

import "time"

// ExpireAction is what happens to a box when its ttl or idle timeout fires.
type ExpireAction string

// Expire actions (BoxSpec.OnExpire).
const (
	ExpireStop   ExpireAction = "stop"   // stop the box, keeping its files (the default)
	ExpireRemove ExpireAction = "remove" // remove the box and everything it has
	// ExpireHibernate hibernates the box (an extension, issue 14): saved
	// with its memory and stopped; the next exec, copy, attach or start
	// resumes it where it was. Drivers without checkpoints stop it instead.
	ExpireHibernate ExpireAction = "hibernate"
)

// Lifetime is the lifetime state of a box (Service.Lifetime, the lifetime
// API extension). Zero durations mean no limit; zero times are null.
type Lifetime struct {
	BoxID       string        `json:"box_id"`
	TTL         time.Duration `json:"-"`
	IdleTimeout time.Duration `json:"-"`
	TTLMS       int64         `json:"ttl_ms"`          // TTL in ms, 0 = none
	IdleMS      int64         `json:"idle_timeout_ms"` // IdleTimeout in ms, 0 = none
	OnExpire    ExpireAction  `json:"on_expire"`
	// ExpiresAt is when the ttl fires: the box's last start plus TTL.
	ExpiresAt *time.Time `json:"expires_at"`
	// IdleExpiresAt is when the idle timeout fires if nothing happens
	// (null while an exec or attach session runs).
	IdleExpiresAt  *time.Time `json:"idle_expires_at"`
	LastActivityAt *time.Time `json:"last_activity_at"`
	// ExpiredBy is "ttl" or "idle" once the box expired, else "".
	ExpiredBy string `json:"expired_by"`
	// Hibernated is true while the box is hibernated (status stopped, its
	// memory saved; see Snapshotter.Hibernate).
	Hibernated bool `json:"hibernated"`
}
