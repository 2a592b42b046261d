// Package media owns where generated images live and how clients reach them without
// an API key: Disk keeps objects under a directory with atomic writes, and Signer
// makes and checks the signed, expiring URLs under which the API serves them.
//
// The HTTP side (GET /media/{key...}) lives in httpapi; this package only decides
// whether a key and a query are genuine and hands back the bytes.
package media
