#pragma once
int bounded(int x);
