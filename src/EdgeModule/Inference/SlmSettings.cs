using EdgeSlm.Intents.LanguageModel;

namespace EdgeSlm.EdgeModule.Inference;

/// <summary>When the generative language model decides.</summary>
public enum SlmMode
{
    /// <summary>Never: templates and the trained classifier only.</summary>
    Off,

    /// <summary>When the classifier is below its threshold or does not recognise the request.</summary>
    Fallback,

    /// <summary>No classifier is trained: templates, then the model, from intent names, descriptions and examples.</summary>
    Only,
}

/// <summary>The <c>Slm</c> section: a llama or qwen2 GGUF file behind (or instead of) the classifier.</summary>
public sealed class SlmSettings
{
    /// <summary>The GGUF file (llama or qwen2 architecture, F32/F16/Q8_0/Q4_0 matrices); empty: no language model.</summary>
    public string? Model { get; set; }

    /// <summary><c>off</c>, <c>fallback</c> or <c>only</c>; empty: fallback when a model is set, off when not.</summary>
    public string? Mode { get; set; }

    /// <summary>Threads of the model's products (it has its own pool; one utterance runs at a time).</summary>
    public int Threads { get; set; } = Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>The longest request the model reads, in its tokens; longer ones are cut (the answer says truncated).</summary>
    public int MaxUtteranceTokens { get; set; } = 48;

    /// <summary>The most tokens the model may generate for an answer's slots.</summary>
    public int MaxAnswerTokens { get; set; } = 48;

    /// <summary>
    /// Milliseconds one batch may spend in the model; after that the classifier's answer stands for the rest of the
    /// batch, so the queue never waits on a slow model beyond it.
    /// </summary>
    public int BudgetMilliseconds { get; set; } = 1500;

    /// <summary>Example requests per intent in the prompt (from the examples and templates).</summary>
    public int ExamplesPerIntent { get; set; } = 2;

    public SlmMode ParsedMode() => (Mode?.Trim().ToLowerInvariant()) switch
    {
        null or "" => string.IsNullOrWhiteSpace(Model) ? SlmMode.Off : SlmMode.Fallback,
        "off" => SlmMode.Off,
        "fallback" => SlmMode.Fallback,
        "only" => SlmMode.Only,
        _ => throw new FormatException($"Slm:Mode: '{Mode}' is not off, fallback or only"),
    };

    public SlmOptions Options() => new(MaxUtteranceTokens, MaxAnswerTokens, ExamplesPerIntent, Threads);

    public IEnumerable<string> Validate()
    {
        SlmMode? mode = null;
        string? error = null;
        try
        {
            mode = ParsedMode();
        }
        catch (FormatException e)
        {
            error = e.Message;
        }
        if (error is not null) yield return error;
        if (mode is SlmMode.Fallback or SlmMode.Only && string.IsNullOrWhiteSpace(Model)) yield return $"Slm:Mode: {Mode} needs Slm:Model (a llama or qwen2 GGUF file)";
        if (Threads is < 1 or > 64) yield return $"Slm:Threads: {Threads} is not between 1 and 64";
        if (MaxUtteranceTokens is < 1 or > 4096) yield return $"Slm:MaxUtteranceTokens: {MaxUtteranceTokens} is not between 1 and 4096";
        if (MaxAnswerTokens is < 4 or > 4096) yield return $"Slm:MaxAnswerTokens: {MaxAnswerTokens} is not between 4 and 4096";
        if (BudgetMilliseconds is < 1 or > 600_000) yield return $"Slm:BudgetMilliseconds: {BudgetMilliseconds} is not between 1 and 600000";
        if (ExamplesPerIntent is < 0 or > 50) yield return $"Slm:ExamplesPerIntent: {ExamplesPerIntent} is not between 0 and 50";
    }
}
