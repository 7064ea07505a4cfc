#pragma once
int compute(int x);
