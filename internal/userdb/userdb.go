// Package userdb resolves the user of a box ("", "name", "uid", "uid:gid",
// "name:group") to numeric IDs through the /etc/passwd and /etc/group files
// of a root filesystem, as container runtimes do for an image's User. It is
// shared by the gvisor and qemu drivers and the fake; it imports nothing of
// boxrun (callers wrap ErrUnknown and ErrSyntax in boxrun.ErrInvalid).
package userdb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Errors of Resolve: a name missing from the database, or a spec that is
// not one of the accepted forms.
var (
	ErrUnknown = errors.New("userdb: unknown user or group")
	ErrSyntax  = errors.New("userdb: bad user spec")
)

// DefaultHome is the home of a user without a passwd entry.
const DefaultHome = "/"

// User is a resolved user.
type User struct {
	UID, GID uint32
	// Groups are the supplementary groups: every group of /etc/group that
	// lists the user's name as a member, without GID, sorted.
	Groups []uint32
	// Home is the passwd home directory, DefaultHome without an entry
	// ("/root" for root without one).
	Home string
}

// Entry is one line of /etc/passwd or /etc/group.
type Entry struct {
	Name    string
	ID      uint32   // uid or gid
	GID     uint32   // passwd: primary group
	Home    string   // passwd
	Members []string // group
}

// DB is the content of a rootfs's /etc/passwd and /etc/group.
type DB struct {
	Passwd []Entry
	Group  []Entry
}

// Load reads /etc/passwd and /etc/group under root, resolved inside root
// (symlinks cannot lead out of it). A missing file is an empty list; root
// "" is an empty database.
func Load(root string) (*DB, error) {
	db := &DB{}
	if root == "" {
		return db, nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("userdb: %w", err)
	}
	defer r.Close()
	for _, f := range []struct {
		name   string
		dst    *[]Entry
		passwd bool
	}{{"etc/passwd", &db.Passwd, true}, {"etc/group", &db.Group, false}} {
		file, err := r.Open(f.name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("userdb: %w", err)
		}
		*f.dst, err = parse(file, f.passwd)
		file.Close()
		if err != nil {
			return nil, fmt.Errorf("userdb: read /%s: %w", f.name, err)
		}
	}
	return db, nil
}

// parse reads passwd (name:pw:uid:gid:gecos:home:shell) or group
// (name:pw:gid:members) lines; blank, comment and malformed lines are
// skipped.
func parse(r io.Reader, passwd bool) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if (passwd && len(f) < 7) || (!passwd && len(f) < 4) || f[0] == "" {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		e := Entry{Name: f[0], ID: uint32(id)}
		if passwd {
			gid, err := strconv.ParseUint(f[3], 10, 32)
			if err != nil {
				continue
			}
			e.GID, e.Home = uint32(gid), f[5]
		} else if f[3] != "" {
			e.Members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Resolve loads the database of root and resolves spec in it.
func Resolve(root, spec string) (User, error) {
	db, err := Load(root)
	if err != nil {
		return User{}, err
	}
	return db.Resolve(spec)
}

// Resolve turns spec into a User. "" is root. The user part is a name
// (which must be in passwd) or a number (looked up in passwd for its group
// and home, but valid without an entry: group 0 then); the group part,
// when present, is a name (which must be in group) or a number, and
// overrides the passwd group.
func (db *DB) Resolve(spec string) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		if spec != "" {
			return User{}, fmt.Errorf("%w: %q has no user", ErrSyntax, spec)
		}
		userPart = "0"
	}
	if hasGroup && groupPart == "" {
		return User{}, fmt.Errorf("%w: %q has an empty group", ErrSyntax, spec)
	}
	var u User
	var pw *Entry
	if id, ok := number(userPart); ok {
		u.UID = id
		if i := slices.IndexFunc(db.Passwd, func(e Entry) bool { return e.ID == id }); i >= 0 {
			pw = &db.Passwd[i]
		}
	} else {
		i := slices.IndexFunc(db.Passwd, func(e Entry) bool { return e.Name == userPart })
		if i < 0 {
			return User{}, fmt.Errorf("%w: no user %q in /etc/passwd", ErrUnknown, userPart)
		}
		pw = &db.Passwd[i]
		u.UID = pw.ID
	}
	u.Home = DefaultHome
	if u.UID == 0 {
		u.Home = "/root"
	}
	if pw != nil {
		u.GID = pw.GID
		if pw.Home != "" {
			u.Home = pw.Home
		}
	}
	if hasGroup {
		if id, ok := number(groupPart); ok {
			u.GID = id
		} else {
			i := slices.IndexFunc(db.Group, func(e Entry) bool { return e.Name == groupPart })
			if i < 0 {
				return User{}, fmt.Errorf("%w: no group %q in /etc/group", ErrUnknown, groupPart)
			}
			u.GID = db.Group[i].ID
		}
	}
	if pw != nil {
		for _, g := range db.Group {
			if g.ID != u.GID && slices.Contains(g.Members, pw.Name) && !slices.Contains(u.Groups, g.ID) {
				u.Groups = append(u.Groups, g.ID)
			}
		}
		slices.Sort(u.Groups)
	}
	return u, nil
}

// number parses a decimal uid or gid.
func number(s string) (uint32, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// HasEnv reports whether env (KEY=VALUE) sets key.
func HasEnv(env []string, key string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}
