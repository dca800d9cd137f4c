module aion/bench/goserver

go 1.19
