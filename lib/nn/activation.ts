// activation.ts — elementwise activation modules over the ops of the same name: nn.ReLU, nn.GELU
// (exact erf form, PyTorch's default), nn.SiLU, nn.Tanh, nn.Sigmoid. Any shape in, same shape out.
import type { Tensor } from '../tensor';
import { checkTensor } from '../tensor';
import { relu, gelu, silu, tanh, sigmoid } from '../ops/elementwise';
import { Module } from './module';

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    checkTensor('nn.ReLU.forward', 'x', x);
    return relu(x);
  }
}

/** GELU(x) = x·Φ(x), the exact erf form (PyTorch's approximate='none'). */
export class GELU extends Module {
  forward(x: Tensor): Tensor {
    checkTensor('nn.GELU.forward', 'x', x);
    return gelu(x);
  }
}

/** SiLU(x) = x·σ(x) (also called swish). */
export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    checkTensor('nn.SiLU.forward', 'x', x);
    return silu(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    checkTensor('nn.Tanh.forward', 'x', x);
    return tanh(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    checkTensor('nn.Sigmoid.forward', 'x', x);
    return sigmoid(x);
  }
}
