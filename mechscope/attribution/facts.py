"""A built-in fact set for causal tracing: (subject, prompt, answer) triples that the embedded Gemma 3 270M
(Q4_K_M-dequantised) answers with top-1 greedy next token, checked by tests/attribution/test_tracing_gemma.py.

Screened from ~110 hand-written candidates (the probability the model gives each answer is in the comment);
chosen round-robin over the prompt templates so no one kind of fact dominates the averaged picture.
"""

from __future__ import annotations

from typing import NamedTuple


class Fact(NamedTuple):
    subject: str
    prompt: str
    answer: str


FACTS: tuple[Fact, ...] = (
    Fact('Michael Jordan', 'Michael Jordan plays the sport of', ' basketball'),  # p=0.76
    Fact('The Eiffel Tower', 'The Eiffel Tower is located in the city of', ' Paris'),  # p=0.76
    Fact('The Taj Mahal', 'The Taj Mahal is located in the country of', ' India'),  # p=0.63
    Fact('France', 'The capital of France is the city of', ' Paris'),  # p=0.52
    Fact('Toyota', 'Toyota is a car company from the country of', ' Japan'),  # p=0.88
    Fact('Windows', 'Windows is an operating system made by', ' Microsoft'),  # p=0.86
    Fact('Albert Einstein', 'Albert Einstein was famous for the theory of', ' relativity'),  # p=0.84
    Fact('The Amazon', 'The Amazon river flows through the country of', ' Brazil'),  # p=0.22
    Fact('Sushi', 'Sushi is a traditional food from the country of', ' Japan'),  # p=0.71
    Fact('Amazon', 'Amazon was founded by Jeff', ' Bezos'),  # p=0.92
    Fact('Brazil', 'The official language of Brazil is', ' Portuguese'),  # p=0.89
    Fact('Tiger Woods', 'Tiger Woods plays the sport of', ' golf'),  # p=0.80
    Fact('The Colosseum', 'The Colosseum is located in the city of', ' Rome'),  # p=0.82
    Fact('Mount Fuji', 'Mount Fuji is located in the country of', ' Japan'),  # p=0.86
    Fact('Germany', 'The capital of Germany is the city of', ' Berlin'),  # p=0.35
    Fact('BMW', 'BMW is a car company from the country of', ' Germany'),  # p=0.31
    Fact('PlayStation', 'The PlayStation is made by the company', ' Sony'),  # p=0.47
    Fact('Wolfgang Amadeus Mozart', 'Wolfgang Amadeus Mozart was a famous', ' composer'),  # p=0.33
    Fact('The Nile', 'The Nile river flows through the country of', ' Egypt'),  # p=0.60
    Fact('Pizza', 'Pizza is a traditional food from the country of', ' Italy'),  # p=0.31
    Fact('Microsoft', 'Microsoft was founded by Bill', ' Gates'),  # p=0.98
    Fact('Germany', 'The official language of Germany is', ' German'),  # p=0.69
    Fact('Roger Federer', 'Roger Federer plays the sport of', ' tennis'),  # p=0.46
    Fact('The Statue of Liberty', 'The Statue of Liberty is located in the city of', ' New'),  # p=0.72
    Fact('The Great Wall', 'The Great Wall is located in the country of', ' China'),  # p=0.67
    Fact('Italy', 'The capital of Italy is the city of', ' Rome'),  # p=0.36
    Fact('Ferrari', 'Ferrari is a car company from the country of', ' Italy'),  # p=0.42
    Fact('Barack Obama', 'Barack Obama served as the president of the United', ' States'),  # p=0.99
    Fact('Tacos', 'Tacos are a traditional food from the country of', ' Mexico'),  # p=0.52
    Fact('Facebook', 'Facebook was founded by Mark', ' Zuckerberg'),  # p=0.98
    Fact('France', 'The official language of France is', ' French'),  # p=0.85
    Fact('Serena Williams', 'Serena Williams plays the sport of', ' tennis'),  # p=0.32
    Fact('The Brandenburg Gate', 'The Brandenburg Gate is located in the city of', ' Berlin'),  # p=0.66
    Fact('Spain', 'The capital of Spain is the city of', ' Madrid'),  # p=0.24
    Fact('Volvo', 'Volvo is a car company from the country of', ' Sweden'),  # p=0.92
    Fact('Vladimir Putin', 'Vladimir Putin is the president of', ' Russia'),  # p=0.53
    Fact('Kimchi', 'Kimchi is a traditional food from the country of', ' Korea'),  # p=0.76
    Fact('Japan', 'The official language of Japan is', ' Japanese'),  # p=0.40
    Fact('Tom Brady', 'Tom Brady plays the sport of', ' football'),  # p=0.32
    Fact('The Kremlin', 'The Kremlin is located in the city of', ' Moscow'),  # p=0.10
    Fact('Japan', 'The capital of Japan is the city of', ' Tokyo'),  # p=0.33
    Fact('Hyundai', 'Hyundai is a car company from the country of', ' South'),  # p=0.56
    Fact('Emmanuel Macron', 'Emmanuel Macron is the president of', ' France'),  # p=0.69
    Fact('Mexico', 'The official language of Mexico is', ' Spanish'),  # p=0.71
)
