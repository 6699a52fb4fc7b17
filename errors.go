package boxrun

import "github.com/boxrun/boxrun/boxapi"

func boxNotFound(idOrName string) *boxapi.Error {
	return boxapi.Errorf(boxapi.CodeBoxNotFound, "Box '%s' not found", idOrName)
}

func execNotFound(id string) *boxapi.Error {
	return boxapi.Errorf(boxapi.CodeExecNotFound, "Exec '%s' not found", id)
}

func invalid(msg string) *boxapi.Error {
	return &boxapi.Error{Code: boxapi.CodeValidationError, Message: msg}
}

func snapshotNotFound(id string) *boxapi.Error {
	return boxapi.Errorf(boxapi.CodeSnapshotNotFound, "Snapshot '%s' not found", id)
}
