namespace EdgeSlm.Models.Bert;

/// <summary>How token states become one sentence embedding; the values are llama.cpp's <c>pooling_type</c>.</summary>
public enum Pooling
{
    Mean = 1,
    Cls = 2,
}

/// <summary>The dimensions of a BERT encoder, as GGUF stores them under <c>bert.*</c>.</summary>
public sealed record BertConfig(
    int VocabularySize,
    int HiddenSize,       // embedding_length
    int LayerCount,       // block_count
    int HeadCount,        // attention.head_count
    int FeedForwardSize,  // feed_forward_length
    int ContextLength,    // positions the model was trained with
    int TokenTypeCount,
    float LayerNormEpsilon,
    Pooling Pooling)
{
    public int HeadSize => HiddenSize / HeadCount;
}
