module github.com/keelpg/keel/bench

go 1.26.8

replace github.com/keelpg/keel => ../
