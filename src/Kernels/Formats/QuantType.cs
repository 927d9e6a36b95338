namespace EdgeSlm.Kernels.Formats;

/// <summary>Tensor element types, numbered as ggml numbers them (<c>enum ggml_type</c>), so the values can be
/// written into and read from GGUF files as they are.</summary>
public enum QuantType
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
}
