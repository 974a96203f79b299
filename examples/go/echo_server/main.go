// echo_server - the Go twin of examples/echo_server.c: one goroutine per
// connection, straight-line Read/Write. Serves on 127.0.0.1 (go run .
// -listen 0) until killed; the C program's client mode can drive it.
package main

import (
	"flag"
	"fmt"
	"net"
)

func echo(conn net.Conn) {
	defer conn.Close()
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		if _, err := conn.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	port := flag.Int("listen", 0, "port on 127.0.0.1 (0: any)")
	flag.Parse()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		panic(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go echo(conn)
	}
}
