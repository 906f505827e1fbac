package mcpsdk

// MaxListPages is maxListPages, for the tests.
const MaxListPages = maxListPages
