// etcd server of the pinned release, built from its published modules (go.etcd.io/etcd/v3, the
// repository's root module, carries replace directives and is not go-installable).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
