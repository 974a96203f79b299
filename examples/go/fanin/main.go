// Паттерн Fan-In: несколько каналов объединяются в один (мультиплексирование).
package main

import (
	"log"
	"sort"
	"sync"
)

func main() {
	doneCh := make(chan struct{})
	defer close(doneCh)

	// три независимых источника данных
	ch1 := generator(doneCh, []int{1, 2, 3})
	ch2 := generator(doneCh, []int{4, 5, 6})
	ch3 := generator(doneCh, []int{7, 8, 9})

	// значения из разных каналов приходят в непредсказуемом порядке,
	// поэтому собираем их и сортируем перед выводом
	var results []int
	for data := range fanIn(doneCh, ch1, ch2, ch3) {
		results = append(results, data)
	}
	sort.Ints(results)

	for _, res := range results {
		log.Println(res)
	}
	log.Println("Получено значений:", len(results))
}

// generator отправляет данные из слайса в канал
func generator(doneCh chan struct{}, input []int) chan int {
	inputCh := make(chan int)

	go func() {
		defer close(inputCh)

		for _, data := range input {
			select {
			case <-doneCh:
				return
			case inputCh <- data:
			}
		}
	}()

	return inputCh
}

// fanIn объединяет несколько каналов resultChs в один finalCh
func fanIn(doneCh chan struct{}, resultChs ...chan int) chan int {
	finalCh := make(chan int)

	var wg sync.WaitGroup

	// на каждый входной канал — своя горутина, которая пересылает данные
	for _, ch := range resultChs {
		chClosure := ch

		wg.Add(1)

		go func() {
			defer wg.Done()

			for data := range chClosure {
				select {
				case <-doneCh:
					return
				case finalCh <- data:
				}
			}
		}()
	}

	// закрываем finalCh, когда все входные каналы исчерпаны:
	// только тогда в него точно никто не отправит данные
	go func() {
		wg.Wait()
		close(finalCh)
	}()

	return finalCh
}
