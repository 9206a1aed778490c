// Package abandon lets the packages of the module say what an Await whose context ended first
// returns for a future they made: asyncengine.Future keeps the function in a field of its own,
// and asyncengine installs Set.
package abandon

// Set makes fn turn the context's error into the error of an Await of f (an
// *asyncengine.Future) that its context ended before f completed. Call it before f is shared.
var Set func(f any, fn func(ctxErr error) error)
